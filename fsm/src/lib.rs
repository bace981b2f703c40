//! The anycastd service state machine.
//!
//! One [`Machine`] per configured service. It is pure: it never reads a clock, never does IO
//! and never logs. Time comes in with every [`Input`]; timers go out as
//! [`Action::ArmTimer`] and come back as [`Input::TimerFired`]. Each [`Machine::step`] returns
//! a [`Step`]: the [`Transition`] to record (if the state changed) and the [`Action`]s the
//! driver must carry out, in order.
//!
//! States (docs/ARCHITECTURE.md, "The service state machine"):
//! - `Starting`: nothing announced; `rise` consecutive healthy verdicts -> `Healthy`, the first
//!   unhealthy verdict -> `Unhealthy`.
//! - `Healthy`: prefixes announced; `fall` consecutive unhealthy verdicts -> `Unhealthy`.
//! - `Unhealthy`: withdrawn; `rise` consecutive healthy verdicts -> `Healthy`.
//! - `Draining(cause)`: withdrawn whatever the checks say; verdicts keep being counted so that
//!   an undrain goes straight to `Healthy` when the last `rise` verdicts passed.
//!
//! Levels (docs/ARCHITECTURE.md, "Announcement levels"): each state wants its prefixes
//! withdrawn or announced at a [`Level`] ([`Machine::wanted`]). `Healthy` wants
//! [`Level::Normal`]; `Unhealthy` wants [`Level::Depreferred`] under
//! [`OnUnhealthy::Deprefer`] (a service that cannot withdraw on health), else withdrawn; a
//! drain of an announced service with a grace ([`Params::drain_grace`], or the grace of
//! [`Input::DrainAfter`]) wants [`Level::GracefulShutdown`] until the grace ends
//! ([`Timer::GraceEnd`], a self-transition with [`Cause::GraceEnded`]), then withdrawn. A
//! change of level while announced is one [`Action::Announce`] at the new level, never a
//! withdrawal in between.
//!
//! Verdicts: every check has a latest observation (pass, fail, pending). A verdict is formed
//! each time an observation arrives (or a pending timeout expires) and no check is pending:
//! healthy when all checks pass (or, with `require = N`, at least N), unhealthy otherwise.
//! With [`Params::fail_early`] (the daemon's rule; journals from before it replay without
//! it) an unhealthy verdict does not wait for pending checks that could not change it: with
//! `require = all` one failing check decides while another has no result yet. This departs
//! from the first design, where a verdict always waited for every check: a check that is
//! pending (Cabourotte restarting, "result not found") kept a definitely failed service
//! announced for up to its `pending_timeout`. A healthy verdict still waits for them all.
//! `rise` and `fall` therefore count check results, not intervals. A check that stays
//! pending longer than its `pending_timeout` counts as failed ("no result"). A shadow check
//! is observed (its latest result is kept and shown in verdicts as [`Counted::Shadow`]) but
//! never forms or decides a verdict.
//!
//! [`Machine::step`] takes an input in two parts: bookkeeping (the checks' latest results,
//! the verdict counters, the damping penalty, the timers) turns it into an event, and the
//! transition table, one exhaustive `match` on (state, event) in `Machine::next` that names
//! every state for every event, decides where the event leads.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A point in time: milliseconds since the Unix epoch, UTC. Supplied by the driver.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The timestamp `duration` later, saturating.
    pub fn after(self, duration: Duration) -> Timestamp {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// Time elapsed from `earlier` to `self`; negative spans saturate at zero.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// Why a service is drained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrainCause {
    /// An operator asked for it (`anycastd drain`).
    Operator {
        /// Free text given by the operator.
        reason: String,
        /// When the drain ends by itself, if it was given a duration.
        expires_at: Option<Timestamp>,
        /// Unix uid of the caller.
        uid: u32,
    },
    /// The daemon is stopping.
    Shutdown,
    /// The service was removed from the configuration by a reload.
    Removed,
}

/// The state of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Not yet proven healthy; nothing announced.
    Starting,
    /// Every check passes; prefixes announced.
    Healthy,
    /// A check fails; prefixes withdrawn.
    Unhealthy,
    /// Withdrawn on purpose.
    Draining(DrainCause),
}

impl State {
    /// Whether the service's prefixes are announced at the normal level in this state (what
    /// [`Machine::wanted`] says with the default parameters: withdraw when unhealthy, no
    /// grace).
    pub fn announces(&self) -> bool {
        matches!(self, State::Healthy)
    }

    /// A short lowercase name (`starting`, `healthy`, `unhealthy`, `draining`).
    pub fn name(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Draining(_) => "draining",
        }
    }
}

/// One result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observation {
    /// The check passed.
    Pass,
    /// The check failed, with the reason.
    Fail(String),
    /// No result yet (never observed, or the checker has no result for it).
    Pending,
}

/// What an unhealthy service does with its prefixes (`on_unhealthy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OnUnhealthy {
    /// Withdraw them (the default, and the only behaviour before graded announcements).
    #[default]
    Withdraw,
    /// Keep them announced, de-preferred, so that every healthy site wins and this one stays
    /// the last resort.
    Deprefer,
}

/// The level of an announcement: what a state wants its prefixes announced with. Withdrawn
/// is no level (`None` from [`Machine::wanted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// The plain route.
    Normal,
    /// De-preferred: the service's `deprefer` attributes (an unhealthy service under
    /// [`OnUnhealthy::Deprefer`]).
    Depreferred,
    /// In a drain's grace: RFC 8326 GRACEFUL_SHUTDOWN (with the `deprefer` attributes),
    /// withdrawn when the grace ends.
    GracefulShutdown,
}

impl Level {
    /// A short lowercase name (`normal`, `de-preferred`, `graceful-shutdown`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Depreferred => "de-preferred",
            Level::GracefulShutdown => "graceful-shutdown",
        }
    }
}

/// Parameters of one service's machine. They may change on a reload; the counters survive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Consecutive healthy verdicts needed to announce.
    pub rise: u32,
    /// Consecutive unhealthy verdicts needed to withdraw a healthy service.
    pub fall: u32,
    /// Per check (by index): how long it may stay pending before it counts as failed.
    pub pending_timeouts: Vec<Duration>,
    /// Flap damping, off when `None`.
    pub damping: Option<Damping>,
    /// How many checks (shadow checks aside) must pass for a healthy verdict; 0: all.
    #[serde(default)]
    pub require: u32,
    /// Per check (by index): a shadow check is observed but never part of a verdict (missing
    /// entries: not a shadow).
    #[serde(default)]
    pub shadow: Vec<bool>,
    /// Form an unhealthy verdict while checks are still pending when they could not make it
    /// healthy any more (with `require = all`: any check failed), instead of waiting for
    /// them. Journals written before this rule replay without it.
    #[serde(default)]
    pub fail_early: bool,
    /// What an unhealthy service does: withdraw (the default) or stay announced de-preferred.
    #[serde(default)]
    pub on_unhealthy: OnUnhealthy,
    /// How long a drain of an announced service keeps it announced with GRACEFUL_SHUTDOWN
    /// before withdrawing it (zero: withdrawn at once, the default).
    #[serde(default)]
    pub drain_grace: Duration,
}

impl Params {
    /// `rise`/`fall` 1/1, the given pending timeouts, no damping, every check required.
    pub fn new(pending_timeouts: Vec<Duration>) -> Params {
        Params {
            rise: 1,
            fall: 1,
            pending_timeouts,
            damping: None,
            require: 0,
            shadow: Vec::new(),
            fail_early: true,
            on_unhealthy: OnUnhealthy::Withdraw,
            drain_grace: Duration::ZERO,
        }
    }

    /// Whether check `index` is part of verdicts (not a shadow check).
    pub fn gates(&self, index: usize) -> bool {
        !self.shadow.get(index).copied().unwrap_or(false)
    }

    /// Whether any check is part of verdicts.
    fn any_gating(&self) -> bool {
        (0..self.pending_timeouts.len()).any(|i| self.gates(i))
    }
}

/// Flap damping (docs/ARCHITECTURE.md, "Flap damping"): every withdrawal caused by health
/// adds `penalty`; the penalty
/// halves every `half_life`; above `suppress` the service stays withdrawn until the penalty
/// is below `reuse` (or `max_suppress` has passed) and its checks pass. Integer arithmetic
/// only, so a replay reproduces it bit for bit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damping {
    /// Added per health-caused withdrawal.
    pub penalty: u32,
    /// Suppress above this.
    pub suppress: u32,
    /// Reuse below this (less than `suppress`).
    pub reuse: u32,
    /// The penalty halves in this time (not zero).
    pub half_life: Duration,
    /// Longest suppression.
    pub max_suppress: Duration,
}

/// The damping state of a service: penalty (in thousandths) at a time, and since when it is
/// suppressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DampingState {
    /// Penalty × 1000 at `at`.
    pub penalty_milli: u64,
    /// When `penalty_milli` was computed.
    pub at: Timestamp,
    /// Since when the service is suppressed.
    pub suppressed_since: Option<Timestamp>,
}

/// `2^(-2^(k-16))` in Q32 for the bits `k` of a Q16 fraction (bit 15 = one half).
const FRACTION_FACTORS_Q32: [u64; 16] = [
    4294921870, 4294876445, 4294785595, 4294603903, 4294240540, 4293513907, 4292061010, 4289156690,
    4283353945, 4271771996, 4248701965, 4202935003, 4112874773, 3938502376, 3611622603, 3037000500,
];

/// `value × 2^(-elapsed / half_life)` in integer arithmetic.
pub fn decay(value: u64, elapsed: Duration, half_life: Duration) -> u64 {
    let half_life_ms = half_life.as_millis().max(1);
    let elapsed_ms = elapsed.as_millis();
    let whole = elapsed_ms / half_life_ms;
    if whole >= 64 {
        return 0;
    }
    let mut v = value >> whole;
    let fraction_q16 = ((elapsed_ms % half_life_ms) << 16) / half_life_ms;
    for (bit, factor) in FRACTION_FACTORS_Q32.iter().enumerate() {
        if fraction_q16 & (1 << bit) != 0 {
            v = ((u128::from(v) * u128::from(*factor)) >> 32) as u64;
        }
    }
    v
}

impl Damping {
    /// When a penalty of `milli` at `at` has decayed below `reuse` (binary search over
    /// [`decay`], so the answer is exact and reproducible).
    pub fn reuse_time(&self, milli: u64, at: Timestamp) -> Timestamp {
        let reuse = u64::from(self.reuse) * 1000;
        let (mut low, mut high) = (0u64, self.half_life.as_millis() as u64 * 64);
        while low < high {
            let mid = low + (high - low) / 2;
            if decay(milli, Duration::from_millis(mid), self.half_life) < reuse {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        at.after(Duration::from_millis(low))
    }
}

/// A timer the machine asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Check `n` may have been pending too long.
    PendingTimeout(usize),
    /// An operator drain with an expiry may be over.
    DrainExpiry,
    /// Form a verdict now (armed at creation for a service without checks, which is always
    /// healthy).
    Evaluate,
    /// A damping suppression may be over.
    DampingReuse,
    /// A drain's grace may be over: withdraw.
    GraceEnd,
}

/// Something that happened to a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A check (by index) produced an observation.
    Observed {
        /// Index of the check in the service's check list.
        check: usize,
        /// What it saw.
        observation: Observation,
        /// When.
        at: Timestamp,
    },
    /// A timer armed earlier is due.
    TimerFired {
        /// Which timer.
        timer: Timer,
        /// When it fired.
        at: Timestamp,
    },
    /// Withdraw on purpose.
    Drain {
        /// Why.
        cause: DrainCause,
        /// When.
        at: Timestamp,
    },
    /// End an operator drain.
    Undrain {
        /// When.
        at: Timestamp,
    },
    /// Withdraw on purpose after a grace of `grace` instead of the service's
    /// [`Params::drain_grace`] (`anycastd drain --grace`, `anycastd stop --grace`, a second
    /// signal). A grace shorter than the one in progress shortens it; zero withdraws at once.
    DrainAfter {
        /// Why.
        cause: DrainCause,
        /// The grace (RFC 8326 GRACEFUL_SHUTDOWN) before the withdrawal.
        grace: Duration,
        /// When.
        at: Timestamp,
    },
}

impl Input {
    /// The time the input carries.
    pub fn at(&self) -> Timestamp {
        match self {
            Input::Observed { at, .. }
            | Input::TimerFired { at, .. }
            | Input::Drain { at, .. }
            | Input::DrainAfter { at, .. }
            | Input::Undrain { at } => *at,
        }
    }
}

/// The verdict that caused a transition, with each check's effective result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Healthy (as many checks pass as `require` asks: all by default) or not.
    pub healthy: bool,
    /// Each check's result as the verdict counted it.
    pub checks: Vec<Counted>,
}

/// A check's result as a verdict counts it: its latest observation, or, for a check pending
/// past its timeout, a failure for want of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counted {
    /// Its latest observation (a pass, a failure, or a pending without a timeout running).
    Seen(Observation),
    /// No result within its pending timeout: counts as failed.
    NoResult {
        /// The pending timeout that expired.
        timeout: Duration,
    },
    /// A shadow check's latest observation: shown, not counted.
    Shadow(Observation),
}

impl Counted {
    /// Whether it counts as a pass.
    pub fn passes(&self) -> bool {
        matches!(self, Counted::Seen(Observation::Pass))
    }
}

/// Why a transition happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// Check verdicts (the last one is carried).
    Verdict(Verdict),
    /// A drain (operator, shutdown or removal).
    Drain,
    /// An operator undrain.
    Undrain,
    /// An operator drain reached its expiry.
    DrainExpired,
    /// Flap damping stopped suppressing a service whose checks pass.
    Unsuppressed,
    /// A drain's grace ended (or was cut short): the service, still draining, is withdrawn.
    GraceEnded,
}

/// The consecutive verdict counters at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Consecutive healthy verdicts.
    pub healthy_streak: u32,
    /// Consecutive unhealthy verdicts.
    pub unhealthy_streak: u32,
}

/// A state change, the thing that gets recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Why.
    pub cause: Cause,
    /// Counters after the input was applied.
    pub counters: Counters,
    /// When.
    pub at: Timestamp,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Announce every prefix of the service at this level (also when already announced at
    /// another: the announcement changes in place, never withdrawn in between).
    Announce(Level),
    /// Withdraw every prefix of the service.
    Withdraw,
    /// Feed back `Input::TimerFired { timer }` at `deadline` (replacing an earlier one).
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When it is due.
        deadline: Timestamp,
    },
}

/// What an input amounts to, for the transition table.
#[derive(Debug)]
enum Event {
    /// Nothing that can change the state (a result while another check is pending, a stale
    /// timer).
    Nothing,
    /// A verdict, counted.
    Verdict(Verdict),
    /// Withdraw on purpose, after this grace.
    Drain(DrainCause, Duration),
    /// End an operator drain.
    Undrain,
    /// A drain's expiry timer fired (the table checks the deadline).
    DrainTimer,
    /// A grace's timer fired (the table checks the deadline).
    GraceTimer,
    /// Flap damping stopped suppressing the service.
    SuppressionEnded,
}

/// An input taken into the bookkeeping: its event, and timers to arm before and after the
/// transition's own actions.
struct Bookkept {
    event: Event,
    before: Vec<Action>,
    after: Vec<Action>,
}

impl Bookkept {
    fn nothing() -> Bookkept {
        Bookkept::event(Event::Nothing)
    }

    fn event(event: Event) -> Bookkept {
        Bookkept {
            event,
            before: Vec::new(),
            after: Vec::new(),
        }
    }
}

/// What one step produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// The state change, if any.
    pub transition: Option<Transition>,
    /// What the driver must do, in order.
    pub actions: Vec<Action>,
    /// The verdict the input formed (`Some(true)` healthy), if it formed one.
    pub verdict: Option<bool>,
}

/// The latest observation of one check and since when it has been pending.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckSlot {
    latest: Observation,
    pending_since: Option<Timestamp>,
}

/// The state machine of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    params: Params,
    state: State,
    checks: Vec<CheckSlot>,
    counters: Counters,
    damping: DampingState,
    /// While draining: when the grace ends (announced with GRACEFUL_SHUTDOWN until then).
    grace_until: Option<Timestamp>,
}

impl Machine {
    /// A fresh service in `Starting`, every check pending since `at`. The returned actions arm
    /// the pending timeouts.
    pub fn new(params: Params, at: Timestamp) -> (Machine, Vec<Action>) {
        Machine::with_state(params, State::Starting, at)
    }

    /// A service restored in `state` (e.g. `Healthy` after a crash-restart with its prefixes
    /// still in FRR), every check pending since `at`, counters zero. No announce/withdraw
    /// action is returned: the caller knows what is in FRR.
    pub fn with_state(params: Params, state: State, at: Timestamp) -> (Machine, Vec<Action>) {
        let checks = params
            .pending_timeouts
            .iter()
            .map(|_| CheckSlot {
                latest: Observation::Pending,
                pending_since: Some(at),
            })
            .collect();
        let machine = Machine {
            params,
            state,
            checks,
            counters: Counters::default(),
            damping: DampingState {
                at,
                ..DampingState::default()
            },
            grace_until: None,
        };
        let mut actions: Vec<Action> = (0..machine.checks.len())
            .filter(|check| machine.params.gates(*check))
            .map(|check| machine.pending_timer(check, at))
            .collect();
        if !machine.params.any_gating() {
            actions.push(Action::ArmTimer {
                timer: Timer::Evaluate,
                deadline: at,
            });
        }
        if let State::Draining(DrainCause::Operator {
            expires_at: Some(deadline),
            ..
        }) = &machine.state
        {
            actions.push(Action::ArmTimer {
                timer: Timer::DrainExpiry,
                deadline: *deadline,
            });
        }
        (machine, actions)
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The level the current state wants its prefixes announced at (`None`: withdrawn):
    /// `Healthy` normal; `Unhealthy` de-preferred under [`OnUnhealthy::Deprefer`], else
    /// withdrawn; `Draining` graceful-shutdown while its grace runs, then withdrawn;
    /// `Starting` withdrawn.
    pub fn wanted(&self) -> Option<Level> {
        match self.state {
            State::Starting => None,
            State::Healthy => Some(Level::Normal),
            State::Unhealthy => match self.params.on_unhealthy {
                OnUnhealthy::Deprefer => Some(Level::Depreferred),
                OnUnhealthy::Withdraw => None,
            },
            State::Draining(_) => self.grace_until.map(|_| Level::GracefulShutdown),
        }
    }

    /// While draining in a grace: when it ends.
    pub fn grace_until(&self) -> Option<Timestamp> {
        self.grace_until
    }

    /// Restore a journaled grace of a draining service (after a restart): announced with
    /// GRACEFUL_SHUTDOWN until `until`, which is kept (not started afresh). Returns the
    /// timer to arm; nothing when the service is not draining or the grace is over by `at`
    /// (then it stays withdrawn).
    pub fn restore_grace(&mut self, until: Timestamp, at: Timestamp) -> Vec<Action> {
        if !matches!(self.state, State::Draining(_)) || until <= at {
            return Vec::new();
        }
        self.grace_until = Some(until);
        vec![Action::ArmTimer {
            timer: Timer::GraceEnd,
            deadline: until,
        }]
    }

    /// The current parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The current counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether a rise or a fall is being confirmed: some verdicts toward the other state are
    /// counted, not yet enough (`rise` for Starting and Unhealthy, `fall` for Healthy). The
    /// daemon polls faster meanwhile (`fast_interval`).
    pub fn confirming(&self) -> bool {
        let c = self.counters;
        match self.state {
            State::Starting | State::Unhealthy => {
                c.healthy_streak > 0 && c.healthy_streak < self.params.rise
            }
            State::Healthy => c.unhealthy_streak > 0 && c.unhealthy_streak < self.params.fall,
            State::Draining(_) => false,
        }
    }

    /// The damping state (penalty and suppression).
    pub fn damping(&self) -> DampingState {
        self.damping
    }

    /// The penalty (× 1000) decayed to `at` (0 without damping).
    pub fn penalty_at(&self, at: Timestamp) -> u64 {
        match &self.params.damping {
            Some(d) => decay(
                self.damping.penalty_milli,
                at.since(self.damping.at),
                d.half_life,
            ),
            None => 0,
        }
    }

    /// Whether flap damping keeps the service withdrawn.
    pub fn suppressed(&self) -> bool {
        self.damping.suppressed_since.is_some()
    }

    /// Turn flap damping on or off (keeps the damping state).
    pub fn set_damping(&mut self, damping: Option<Damping>) -> Vec<Action> {
        self.params.damping = damping;
        self.reuse_timer().into_iter().collect()
    }

    /// Restore a journaled damping state (after a restart); returns the timer to arm.
    pub fn restore_damping(&mut self, state: DampingState) -> Vec<Action> {
        self.damping = state;
        self.reuse_timer().into_iter().collect()
    }

    fn reuse_timer(&self) -> Option<Action> {
        let (Some(d), Some(since)) = (&self.params.damping, self.damping.suppressed_since) else {
            return None;
        };
        let deadline = d
            .reuse_time(self.damping.penalty_milli, self.damping.at)
            .min(since.after(d.max_suppress));
        Some(Action::ArmTimer {
            timer: Timer::DampingReuse,
            deadline,
        })
    }

    /// The latest observation of each check.
    pub fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.checks.iter().map(|slot| &slot.latest)
    }

    /// Feed one input; returns the transition (if any) and the actions to carry out.
    ///
    /// In two parts: [`Machine::bookkeep`] takes the input into the checks' results, the
    /// verdict counters, the damping penalty and the timers, and says what it amounts to (an
    /// [`Event`]); [`Machine::next`], the transition table, decides the state that event
    /// leads to.
    pub fn step(&mut self, input: Input) -> Step {
        let at = input.at();
        let Bookkept {
            event,
            before,
            after,
        } = self.bookkeep(input);
        let verdict = match &event {
            Event::Verdict(v) => Some(v.healthy),
            _ => None,
        };
        let drain_grace = match &event {
            Event::Drain(_, grace) => Some(*grace),
            _ => None,
        };
        let mut step = match self.next(event, at) {
            None => Step::default(),
            Some((to, cause)) => {
                // A withdrawal by the checks adds to the flap-damping penalty (under
                // `deprefer` a fall to de-preferred counts as one: damping then holds a
                // flapping service de-preferred).
                let flap = self.state == State::Healthy
                    && to == State::Unhealthy
                    && matches!(cause, Cause::Verdict(_));
                let grace_until = self.grace_after(&to, &cause, drain_grace, at);
                let mut step = self.go(to, cause, grace_until, at);
                if flap {
                    step.actions.extend(self.penalize(at));
                }
                step
            }
        };
        step.verdict = verdict;
        let mut actions = before;
        actions.append(&mut step.actions);
        actions.extend(after);
        step.actions = actions;
        step
    }

    /// Take an input into the machine's bookkeeping; returns the event it amounts to, and
    /// the timers to arm before and after the transition's own actions.
    fn bookkeep(&mut self, input: Input) -> Bookkept {
        match input {
            Input::Observed {
                check,
                observation,
                at,
            } => {
                let gates = self.params.gates(check);
                let Some(slot) = self.checks.get_mut(check) else {
                    return Bookkept::nothing();
                };
                let newly_pending = match observation {
                    Observation::Pending => {
                        slot.latest = Observation::Pending;
                        let newly = slot.pending_since.is_none();
                        slot.pending_since.get_or_insert(at);
                        newly
                    }
                    other => {
                        slot.pending_since = None;
                        slot.latest = other;
                        false
                    }
                };
                if !gates {
                    // A shadow check: its latest result is kept (for status), no verdict.
                    return Bookkept::nothing();
                }
                let mut bookkept = self.count_verdict(at);
                if newly_pending {
                    bookkept.before.push(self.pending_timer(check, at));
                }
                bookkept
            }
            Input::TimerFired {
                timer: Timer::PendingTimeout(check),
                at,
            } => match self.checks.get(check) {
                // Only a check still pending past its timeout turns the verdict.
                Some(CheckSlot {
                    pending_since: Some(since),
                    ..
                }) if self.params.gates(check) && at >= since.after(self.timeout_of(check)) => {
                    self.count_verdict(at)
                }
                _ => Bookkept::nothing(),
            },
            Input::TimerFired {
                timer: Timer::Evaluate,
                at,
            } => self.count_verdict(at),
            Input::TimerFired {
                timer: Timer::DampingReuse,
                at,
            } => {
                let (Some(d), Some(since)) =
                    (self.params.damping.clone(), self.damping.suppressed_since)
                else {
                    return Bookkept::nothing();
                };
                let penalty = self.penalty_at(at);
                if penalty >= u64::from(d.reuse) * 1000 && at < since.after(d.max_suppress) {
                    // Not yet (a stale timer): arm again.
                    return Bookkept {
                        event: Event::Nothing,
                        before: self.reuse_timer().into_iter().collect(),
                        after: Vec::new(),
                    };
                }
                self.damping = DampingState {
                    penalty_milli: penalty,
                    at,
                    suppressed_since: None,
                };
                Bookkept::event(Event::SuppressionEnded)
            }
            Input::TimerFired {
                timer: Timer::DrainExpiry,
                ..
            } => Bookkept::event(Event::DrainTimer),
            Input::TimerFired {
                timer: Timer::GraceEnd,
                ..
            } => Bookkept::event(Event::GraceTimer),
            Input::Drain { cause, at } => {
                let grace = self.params.drain_grace;
                self.bookkeep(Input::DrainAfter { cause, grace, at })
            }
            Input::DrainAfter { cause, grace, .. } => {
                let mut after = Vec::new();
                if let DrainCause::Operator {
                    expires_at: Some(deadline),
                    ..
                } = &cause
                {
                    after.push(Action::ArmTimer {
                        timer: Timer::DrainExpiry,
                        deadline: *deadline,
                    });
                }
                Bookkept {
                    event: Event::Drain(cause, grace),
                    before: Vec::new(),
                    after,
                }
            }
            Input::Undrain { .. } => Bookkept::event(Event::Undrain),
        }
    }

    /// The transition table: where `event` leads from the current state (`None`: it stays).
    /// Every state is named in every event's arms; verdicts were counted before (the streaks
    /// include this one).
    fn next(&self, event: Event, at: Timestamp) -> Option<(State, Cause)> {
        use State::{Draining, Healthy, Starting, Unhealthy};
        let rise_met = self.counters.healthy_streak >= self.params.rise.max(1);
        let fall_met = self.counters.unhealthy_streak >= self.params.fall.max(1);
        // Flap damping holds a suppressed service withdrawn; verdicts keep counting.
        let suppressed = self.suppressed();
        match (&self.state, event) {
            (Starting | Healthy | Unhealthy | Draining(_), Event::Nothing) => None,

            (Starting | Unhealthy, Event::Verdict(v)) if v.healthy && suppressed => None,
            (Starting, Event::Verdict(v)) if v.healthy && rise_met => {
                Some((Healthy, Cause::Verdict(v)))
            }
            (Starting, Event::Verdict(v)) if v.healthy => None,
            (Starting, Event::Verdict(v)) => Some((Unhealthy, Cause::Verdict(v))),
            (Healthy, Event::Verdict(v)) if !v.healthy && fall_met => {
                Some((Unhealthy, Cause::Verdict(v)))
            }
            (Healthy, Event::Verdict(_)) => None,
            (Unhealthy, Event::Verdict(v)) if v.healthy && rise_met => {
                Some((Healthy, Cause::Verdict(v)))
            }
            (Unhealthy, Event::Verdict(_)) => None,
            (Draining(_), Event::Verdict(_)) => None,

            // An operator drain outlives a shutdown: the service is withdrawn already (or in
            // its grace) and must stay drained after the restart (only a removal replaces
            // it). A repeated drain changes nothing, unless it cuts a grace in progress short
            // (a second signal, `--grace 0`).
            (
                Draining(current @ DrainCause::Operator { .. }),
                Event::Drain(DrainCause::Shutdown, grace),
            ) if self.shortens(grace, at) => Some((Draining(current.clone()), self.cut(grace))),
            (Draining(DrainCause::Operator { .. }), Event::Drain(DrainCause::Shutdown, _)) => None,
            (Draining(current), Event::Drain(cause, grace))
                if *current == cause && self.shortens(grace, at) =>
            {
                Some((Draining(cause), self.cut(grace)))
            }
            (Draining(current), Event::Drain(cause, _)) if *current == cause => None,
            (Starting | Healthy | Unhealthy | Draining(_), Event::Drain(cause, _)) => {
                Some((Draining(cause), Cause::Drain))
            }

            (Draining(DrainCause::Operator { .. }), Event::Undrain) => {
                Some((self.after_drain(), Cause::Undrain))
            }
            (
                Starting
                | Healthy
                | Unhealthy
                | Draining(DrainCause::Shutdown | DrainCause::Removed),
                Event::Undrain,
            ) => None,

            (
                Draining(DrainCause::Operator {
                    expires_at: Some(deadline),
                    ..
                }),
                Event::DrainTimer,
            ) if at >= *deadline => Some((self.after_drain(), Cause::DrainExpired)),
            (Starting | Healthy | Unhealthy | Draining(_), Event::DrainTimer) => None,

            (Draining(cause), Event::GraceTimer)
                if self.grace_until.is_some_and(|deadline| at >= deadline) =>
            {
                Some((Draining(cause.clone()), Cause::GraceEnded))
            }
            (Starting | Healthy | Unhealthy | Draining(_), Event::GraceTimer) => None,

            (Starting | Unhealthy, Event::SuppressionEnded) if rise_met => {
                Some((Healthy, Cause::Unsuppressed))
            }
            (Starting | Healthy | Unhealthy | Draining(_), Event::SuppressionEnded) => None,
        }
    }

    /// Replace the parameters (a reload). The state and the rise/fall counters are kept.
    /// `kept[i]` is the old index of new check `i` when it is the same check (same identity),
    /// whose latest observation is then kept; a new check starts pending at `at`. Returns the
    /// timers to arm, after an announce or withdrawal when the new parameters change the
    /// level the state wants (`on_unhealthy` changed while unhealthy).
    pub fn reconfigure(
        &mut self,
        params: Params,
        kept: &[Option<usize>],
        at: Timestamp,
    ) -> Vec<Action> {
        let old = std::mem::take(&mut self.checks);
        self.checks = (0..params.pending_timeouts.len())
            .map(|i| {
                kept.get(i)
                    .copied()
                    .flatten()
                    .and_then(|old_index| old.get(old_index).cloned())
                    .unwrap_or(CheckSlot {
                        latest: Observation::Pending,
                        pending_since: Some(at),
                    })
            })
            .collect();
        let before = self.wanted();
        self.params = params;
        let mut actions = Machine::level_actions(before, self.wanted());
        actions.extend(
            (0..self.checks.len())
                .filter(|check| self.params.gates(*check))
                .filter_map(|check| {
                    self.checks[check]
                        .pending_since
                        .map(|since| self.pending_timer(check, since))
                }),
        );
        if !self.params.any_gating() {
            actions.push(Action::ArmTimer {
                timer: Timer::Evaluate,
                deadline: at,
            });
        }
        actions
    }

    /// Replace the parameters keeping checks by index (same check list).
    pub fn set_params(&mut self, params: Params, at: Timestamp) -> Vec<Action> {
        let kept: Vec<Option<usize>> = (0..params.pending_timeouts.len()).map(Some).collect();
        self.reconfigure(params, &kept, at)
    }

    fn timeout_of(&self, check: usize) -> Duration {
        self.params
            .pending_timeouts
            .get(check)
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    fn pending_timer(&self, check: usize, since: Timestamp) -> Action {
        Action::ArmTimer {
            timer: Timer::PendingTimeout(check),
            deadline: since.after(self.timeout_of(check)),
        }
    }

    /// The verdict at `at`, or `None` while a check is pending within its timeout (and, with
    /// [`Params::fail_early`], the pending checks could still make it healthy).
    fn verdict(&self, at: Timestamp) -> Option<Verdict> {
        let mut checks = Vec::with_capacity(self.checks.len());
        let mut waiting = 0;
        for (index, slot) in self.checks.iter().enumerate() {
            if !self.params.gates(index) {
                checks.push(Counted::Shadow(slot.latest.clone()));
                continue;
            }
            match (&slot.latest, slot.pending_since) {
                (Observation::Pending, Some(since)) => {
                    let timeout = self.timeout_of(index);
                    if at >= since.after(timeout) {
                        checks.push(Counted::NoResult { timeout });
                    } else if self.params.fail_early {
                        waiting += 1;
                        checks.push(Counted::Seen(Observation::Pending));
                    } else {
                        return None;
                    }
                }
                (observation, _) => checks.push(Counted::Seen(observation.clone())),
            }
        }
        let gating = checks
            .iter()
            .filter(|c| !matches!(c, Counted::Shadow(_)))
            .count();
        let passing = checks.iter().filter(|c| c.passes()).count();
        let required = match usize::try_from(self.params.require) {
            Ok(0) | Err(_) => gating,
            Ok(n) => n.min(gating),
        };
        if waiting > 0 {
            // Only a verdict the pending checks cannot change: too few can still pass.
            return (passing + waiting < required).then_some(Verdict {
                healthy: false,
                checks,
            });
        }
        let healthy = passing >= required;
        Some(Verdict { healthy, checks })
    }

    /// Form the verdict (if no check is pending within its timeout) and count it.
    fn count_verdict(&mut self, at: Timestamp) -> Bookkept {
        let Some(verdict) = self.verdict(at) else {
            return Bookkept::nothing();
        };
        if verdict.healthy {
            self.counters.healthy_streak = self.counters.healthy_streak.saturating_add(1);
            self.counters.unhealthy_streak = 0;
        } else {
            self.counters.unhealthy_streak = self.counters.unhealthy_streak.saturating_add(1);
            self.counters.healthy_streak = 0;
        }
        Bookkept::event(Event::Verdict(verdict))
    }

    /// A flap: add the damping penalty (suppressing past the threshold); returns the reuse
    /// timer to arm.
    fn penalize(&mut self, at: Timestamp) -> Option<Action> {
        let d = self.params.damping.clone()?;
        let penalty = self.penalty_at(at) + u64::from(d.penalty) * 1000;
        let suppressed_since = match self.damping.suppressed_since {
            Some(since) => Some(since),
            None if penalty > u64::from(d.suppress) * 1000 => Some(at),
            None => None,
        };
        self.damping = DampingState {
            penalty_milli: penalty,
            at,
            suppressed_since,
        };
        self.reuse_timer()
    }

    /// Where a drain ends: healthy if the last `rise` verdicts passed.
    fn after_drain(&self) -> State {
        if self.counters.healthy_streak >= self.params.rise.max(1) {
            State::Healthy
        } else {
            State::Unhealthy
        }
    }

    /// Whether a drain with `grace` from `at` ends the grace in progress sooner.
    fn shortens(&self, grace: Duration, at: Timestamp) -> bool {
        self.grace_until
            .is_some_and(|deadline| at.after(grace) < deadline)
    }

    /// The cause of a grace cut short by a drain with `grace`: over at once, or shortened.
    fn cut(&self, grace: Duration) -> Cause {
        if grace.is_zero() {
            Cause::GraceEnded
        } else {
            Cause::Drain
        }
    }

    /// The grace a transition to `to` leaves running: a drain (with a `grace` that is not
    /// zero) of a service that is announced gets one, ending no later than a grace already
    /// running; anything else ends it.
    fn grace_after(
        &self,
        to: &State,
        cause: &Cause,
        grace: Option<Duration>,
        at: Timestamp,
    ) -> Option<Timestamp> {
        match (to, cause, grace) {
            (State::Draining(_), Cause::Drain, Some(grace))
                if !grace.is_zero() && self.wanted().is_some() =>
            {
                let end = at.after(grace);
                Some(self.grace_until.map_or(end, |running| running.min(end)))
            }
            _ => None,
        }
    }

    /// The actions that take the prefixes from level `before` to `after`.
    fn level_actions(before: Option<Level>, after: Option<Level>) -> Vec<Action> {
        match (before, after) {
            (before, Some(level)) if before != Some(level) => vec![Action::Announce(level)],
            (Some(_), None) => vec![Action::Withdraw],
            _ => Vec::new(),
        }
    }

    fn go(
        &mut self,
        to: State,
        cause: Cause,
        grace_until: Option<Timestamp>,
        at: Timestamp,
    ) -> Step {
        let before = self.wanted();
        let from = std::mem::replace(&mut self.state, to.clone());
        let rearm = grace_until.filter(|deadline| self.grace_until != Some(*deadline));
        self.grace_until = grace_until;
        let mut actions = Machine::level_actions(before, self.wanted());
        if let Some(deadline) = rearm {
            actions.push(Action::ArmTimer {
                timer: Timer::GraceEnd,
                deadline,
            });
        }
        Step {
            transition: Some(Transition {
                from,
                to,
                cause,
                counters: self.counters,
                at,
            }),
            actions,
            verdict: None,
        }
    }
}
