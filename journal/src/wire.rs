//! The frozen wire types of the journal, format versions 1 to 7.
//!
//! These types are a contract with every journal ever written: enum variants and struct fields
//! are never removed, reordered or changed. A new field or meaning needs a new format version
//! (a new module beside this one, with its own decoder). They are separate from the fsm's
//! types on purpose; the conversions live at the bottom of this file.
//!
//! Format version 2 is version 1 with variants appended to [`Event`] (from [`Event::Runs`] on)
//! and no struct changed, so one set of types decodes both: a version-1 record never holds a
//! version-2 variant. The version byte still changes, so that a build that knows only
//! version 1 skips the new records (counted as unknown) instead of calling them corrupt.
//! What version 2 changes in meaning: check results are no longer journaled as counts
//! (`polls_since_last_edge`, [`Polls`]: always 0 / never written) but as [`Runs`], which give
//! every unchanged result its exact time; a result's time is the time its poll was due.
//!
//! Format version 3 changes three structs: a [`PrefixRef`] names its backend's kind and
//! instance (formats 1 and 2 held a vtysh binary, FRR being the only backend); a
//! [`CheckParams`] names its check's identity (was `url`) and says whether it is a shadow
//! check; a [`ServiceParams`] says how many checks must pass (`require`). Their decoders read
//! the old layout for records of the old versions ([`with_format`]), so one set of types
//! still decodes every version; a build that knows only versions 1 and 2 skips the new
//! records as unknown instead of misreading them.
//!
//! Formats 4 and 5 change no struct: they append record kinds ([`Event::RoutingRestarted`]
//! and [`Event::HookRan`]; [`Event::VerdictRule`]), and only records of those kinds carry the
//! new version byte.
//!
//! Format 6 (graded announcements) appends [`Event::Level`], the level a transition left the
//! service's prefixes announced at when it is not the one its state had before graded
//! announcements (a de-preferred unhealthy service, a drain in its grace, with the grace's
//! end), and [`Cause::GraceEnded`]: a transition with that cause is written as format 6.
//! Services that withdraw and drain without a grace journal exactly as in format 5. It also
//! appends [`Event::FleetGuard`], the fleet guard's answer to a guarded withdrawal.
//!
//! Format 7 appends [`Event::DrainForced`], an operator's drain forced past the fleet guard;
//! no struct changes.

use anycastd_fsm as fsm;
use serde::{Deserialize, Serialize};

/// One prefix as configured: its backend (kind and instance), VRF (`None` = default) and
/// prefix text.
///
/// Format 3 names the backend's kind; formats 1 and 2 held only a vtysh binary (they knew
/// FRR alone), and decode as `backend = "frr"`, `instance =` that binary. Which layout a
/// binary record has is told by its version byte ([`with_format`]); JSON (the control
/// socket) takes either.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PrefixRef {
    /// The backend's kind (`frr`).
    pub backend: String,
    /// Which backend of that kind: for FRR, the vtysh binary that reaches it.
    pub instance: String,
    /// VRF (or table) name; `None` for the default one.
    pub vrf: Option<String>,
    /// The network in CIDR form, e.g. `203.0.113.53/32`.
    pub prefix: String,
}

impl PrefixRef {
    /// A prefix of the FRR reached through `vtysh`.
    pub fn frr(vtysh: &str, vrf: Option<String>, prefix: &str) -> PrefixRef {
        PrefixRef {
            backend: "frr".to_owned(),
            instance: vtysh.to_owned(),
            vrf,
            prefix: prefix.to_owned(),
        }
    }
}

/// [`PrefixRef`] as format 3 writes it.
#[derive(Deserialize)]
struct PrefixRefV3 {
    backend: String,
    instance: String,
    vrf: Option<String>,
    prefix: String,
}

/// [`PrefixRef`] as formats 1 and 2 wrote it.
#[derive(Deserialize)]
struct PrefixRefV1 {
    vtysh: String,
    vrf: Option<String>,
    prefix: String,
}

impl From<PrefixRefV3> for PrefixRef {
    fn from(r: PrefixRefV3) -> PrefixRef {
        PrefixRef {
            backend: r.backend,
            instance: r.instance,
            vrf: r.vrf,
            prefix: r.prefix,
        }
    }
}

impl From<PrefixRefV1> for PrefixRef {
    fn from(r: PrefixRefV1) -> PrefixRef {
        PrefixRef::frr(&r.vtysh, r.vrf, &r.prefix)
    }
}

impl<'de> Deserialize<'de> for PrefixRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PrefixRef, D::Error> {
        if d.is_human_readable() {
            // JSON names its fields: either layout, whatever wrote it.
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Either {
                V3(PrefixRefV3),
                V1(PrefixRefV1),
            }
            return Ok(match Either::deserialize(d)? {
                Either::V3(r) => r.into(),
                Either::V1(r) => r.into(),
            });
        }
        if LEGACY_LAYOUT.with(std::cell::Cell::get) {
            PrefixRefV1::deserialize(d).map(Into::into)
        } else {
            PrefixRefV3::deserialize(d).map(Into::into)
        }
    }
}

thread_local! {
    /// Set while a record of format 1 or 2 is decoded (see [`with_format`]).
    static LEGACY_LAYOUT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `decode` on a binary record body of format `version`: the types that changed layout
/// in format 3 ([`PrefixRef`], [`CheckParams`], [`ServiceParams`]) read the layout of that
/// version.
pub fn with_format<T>(version: u8, decode: impl FnOnce() -> T) -> T {
    let legacy = version < 3;
    let before = LEGACY_LAYOUT.with(|l| l.replace(legacy));
    let result = decode();
    LEGACY_LAYOUT.with(|l| l.set(before));
    result
}

/// The effective parameters of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckParams {
    /// Check kind, e.g. `cabourotte`.
    pub kind: String,
    /// What, with the kind and the name, identifies the check (a Cabourotte's base URL).
    /// Called `url` in JSON before format 3.
    pub identity: String,
    /// Check name.
    pub name: String,
    /// Poll interval.
    pub interval_ms: u64,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// How long it may stay pending before it counts as failed.
    pub pending_timeout_ms: u64,
    /// Maximum result age, if set.
    pub max_age_ms: Option<u64>,
    /// Polled and journaled, but never part of the verdict (format 3; `false` before).
    pub shadow: bool,
}

/// [`CheckParams`] as format 3 writes it.
#[derive(Deserialize)]
struct CheckParamsV3 {
    kind: String,
    #[serde(alias = "url")]
    identity: String,
    name: String,
    interval_ms: u64,
    timeout_ms: u64,
    pending_timeout_ms: u64,
    max_age_ms: Option<u64>,
    #[serde(default)]
    shadow: bool,
}

/// [`CheckParams`] as formats 1 and 2 wrote it.
#[derive(Deserialize)]
struct CheckParamsV1 {
    kind: String,
    url: String,
    name: String,
    interval_ms: u64,
    timeout_ms: u64,
    pending_timeout_ms: u64,
    max_age_ms: Option<u64>,
}

impl<'de> Deserialize<'de> for CheckParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CheckParams, D::Error> {
        // JSON names its fields (`url` or `identity`; `shadow` may be absent): one layout
        // reads both. Binary records have the layout of their version.
        if d.is_human_readable() || !LEGACY_LAYOUT.with(std::cell::Cell::get) {
            let c = CheckParamsV3::deserialize(d)?;
            return Ok(CheckParams {
                kind: c.kind,
                identity: c.identity,
                name: c.name,
                interval_ms: c.interval_ms,
                timeout_ms: c.timeout_ms,
                pending_timeout_ms: c.pending_timeout_ms,
                max_age_ms: c.max_age_ms,
                shadow: c.shadow,
            });
        }
        let c = CheckParamsV1::deserialize(d)?;
        Ok(CheckParams {
            kind: c.kind,
            identity: c.url,
            name: c.name,
            interval_ms: c.interval_ms,
            timeout_ms: c.timeout_ms,
            pending_timeout_ms: c.pending_timeout_ms,
            max_age_ms: c.max_age_ms,
            shadow: false,
        })
    }
}

/// The effective parameters of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceParams {
    /// Service name.
    pub name: String,
    /// Consecutive healthy verdicts to announce.
    pub rise: u32,
    /// Consecutive unhealthy verdicts to withdraw.
    pub fall: u32,
    /// Its checks, in order.
    pub checks: Vec<CheckParams>,
    /// Its prefixes, in order.
    pub prefixes: Vec<PrefixRef>,
    /// How many of its checks (shadow checks aside) must pass for a healthy verdict; 0: all
    /// (format 3; all before).
    pub require: u32,
}

/// [`ServiceParams`] as format 3 writes it.
#[derive(Deserialize)]
struct ServiceParamsV3 {
    name: String,
    rise: u32,
    fall: u32,
    checks: Vec<CheckParams>,
    prefixes: Vec<PrefixRef>,
    #[serde(default)]
    require: u32,
}

/// [`ServiceParams`] as formats 1 and 2 wrote it.
#[derive(Deserialize)]
struct ServiceParamsV1 {
    name: String,
    rise: u32,
    fall: u32,
    checks: Vec<CheckParams>,
    prefixes: Vec<PrefixRef>,
}

impl<'de> Deserialize<'de> for ServiceParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ServiceParams, D::Error> {
        if d.is_human_readable() || !LEGACY_LAYOUT.with(std::cell::Cell::get) {
            let s = ServiceParamsV3::deserialize(d)?;
            return Ok(ServiceParams {
                name: s.name,
                rise: s.rise,
                fall: s.fall,
                checks: s.checks,
                prefixes: s.prefixes,
                require: s.require,
            });
        }
        let s = ServiceParamsV1::deserialize(d)?;
        Ok(ServiceParams {
            name: s.name,
            rise: s.rise,
            fall: s.fall,
            checks: s.checks,
            prefixes: s.prefixes,
            require: 0,
        })
    }
}

/// Why a service is drained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrainCause {
    /// Operator drain.
    Operator {
        /// Reason given.
        reason: String,
        /// Expiry, ms since the epoch.
        expires_at_ms: Option<i64>,
        /// Caller's uid.
        uid: u32,
    },
    /// Daemon shutdown.
    Shutdown,
    /// Removed by a reload.
    Removed,
}

/// A service state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Starting.
    Starting,
    /// Healthy.
    Healthy,
    /// Unhealthy.
    Unhealthy,
    /// Draining.
    Draining(DrainCause),
}

/// One check result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observation {
    /// Passed.
    Pass,
    /// Failed, with the reason.
    Fail(String),
    /// No result.
    Pending,
}

/// One check's result inside a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check name.
    pub check: String,
    /// Its effective result.
    pub observation: Observation,
}

/// Why a transition happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// A verdict.
    Verdict {
        /// Healthy or not.
        healthy: bool,
        /// Each check's result.
        checks: Vec<CheckResult>,
    },
    /// A drain.
    Drain,
    /// An undrain.
    Undrain,
    /// A drain expired.
    DrainExpired,
    /// Restored at start-up: the journal said announced and FRR still had the prefixes.
    Restored,
    /// Adopted at start-up: FRR had configured prefixes the journal knew nothing of.
    Adopted,
    /// Reset at start-up (after a reboot, a clean stop, or prefixes missing from FRR).
    Restart,
    /// Flap damping stopped suppressing the service and its checks pass.
    Unsuppressed,
    // ---- format version 6 ----
    /// A drain's grace ended (or was cut short): the service, still draining, is withdrawn
    /// (format 6).
    GraceEnded,
}

/// What a transition asks of FRR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Announce the prefixes.
    Announce,
    /// Withdraw the prefixes.
    Withdraw,
    /// Nothing changes in FRR.
    None,
}

/// A state transition of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Service name.
    pub service: String,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Why.
    pub cause: Cause,
    /// Consecutive healthy verdicts after the input.
    pub healthy_streak: u32,
    /// Consecutive unhealthy verdicts after the input.
    pub unhealthy_streak: u32,
    /// What it asks of FRR.
    pub change: Change,
    /// The prefixes affected.
    pub prefixes: Vec<PrefixRef>,
}

/// A check result: journaled when it differs from the check's previous one, when it is the
/// first after a start or reload, and when it caused a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckEdge {
    /// Service name.
    pub service: String,
    /// Check name.
    pub check: String,
    /// The new result.
    pub observation: Observation,
    /// Format 1: observations of the service (any check) since the service's previous
    /// observation record, this one excluded: every one of them formed the same verdict as the
    /// last (their times are not known). Always 0 in format 2, which journals [`Runs`].
    pub polls_since_last_edge: u64,
}

/// What happened to one prefix in FRR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The change was made and read back.
    Applied,
    /// The change failed (the error text); it is retried.
    Failed(String),
    /// A newer decision replaced it before it was applied.
    Superseded,
    /// FRR was already in the wanted state.
    AlreadySo,
}

/// The result of applying one decision for one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apply {
    /// Service name.
    pub service: String,
    /// The prefix.
    pub prefix: PrefixRef,
    /// Announce or withdraw.
    pub change: Change,
    /// What happened.
    pub outcome: Outcome,
    /// Sequence number of the transition record that decided it.
    pub decision_seq: u64,
}

/// How the daemon stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopOutcome {
    /// Every managed prefix withdrawn and verified.
    WithdrawnAll,
    /// Some prefixes could not be verified withdrawn.
    Left(Vec<PrefixRef>),
    /// Exited without withdrawing, on purpose (planned restart).
    HandedOver,
}

/// The daemon started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStarted {
    /// anycastd version.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// Hash of the config file's bytes.
    pub config_hash: String,
    /// The kernel boot id at start.
    pub boot_id: String,
    /// Effective parameters of every service.
    pub services: Vec<ServiceParams>,
}

/// The daemon stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStopped {
    /// Why (e.g. `SIGTERM`).
    pub reason: String,
    /// What was left.
    pub outcome: StopOutcome,
}

/// Every kind of journal record. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The daemon started.
    DaemonStarted(DaemonStarted),
    /// The daemon stopped.
    DaemonStopped(DaemonStopped),
    /// A service changed state.
    Transition(Transition),
    /// A check's result changed.
    CheckEdge(CheckEdge),
    /// FRR apply outcome for one prefix.
    Apply(Apply),
    /// What start-up reconciliation found in FRR and decided.
    Reconciled(Reconciled),
    /// An operator action (through the control socket).
    Operator(OperatorAction),
    /// FRR differed from the desired state while running (drift), found by the writer.
    Drift(Drift),
    /// The previous journal could not be read and was moved aside; this one starts anew.
    JournalReset(JournalReset),
    /// Records that could not be written (full disk, I/O error) and are lost.
    JournalGap(JournalGap),
    /// The configuration was reloaded.
    Reloaded(Reloaded),
    /// A check's pending timeout expired and formed a verdict (an input, for replay).
    PendingTimeout(PendingTimeout),
    /// Observations since the service's last observation record, journaled when a run of
    /// them ends without one (shutdown, reload), so that replay knows every verdict.
    Polls(Polls),
    /// A service's flap damping parameters (after a start or reload; `None`: off).
    ServiceDamping(ServiceDamping),
    /// A service's damping penalty or suppression changed (or was restored at a start).
    Damping(DampingRecord),
    // ---- format version 2 ----
    /// Unchanged check results since the service's previous observation record, each with its
    /// exact time (format 2; replaces [`Polls`] and `polls_since_last_edge`).
    Runs(Runs),
    /// A reload changed the service's definition: its driver applied it at this moment, after
    /// the results before it (format 2).
    Reconfigured(Box<Reconfigured>),
    /// A journaled damping state restored at a start, with its penalty decayed to now (format 2).
    DampingRestored(DampingRestored),
    /// A reload was asked for and rejected; the running configuration was kept (format 2).
    ReloadRejected(ReloadRejected),
    // ---- format version 4 ----
    /// The routing daemon of some of the service's prefixes restarted; they are re-read and
    /// re-announced (format 4).
    RoutingRestarted(RoutingRestarted),
    /// A hook ran for one of the service's transitions (format 4).
    HookRan(HookRan),
    // ---- format version 5 ----
    /// How the daemon that just started forms verdicts; written right after its
    /// [`Event::DaemonStarted`] (format 5). A start without one used the rule of format 4 and
    /// before: every verdict waited for the pending checks.
    VerdictRule(VerdictRule),
    // ---- format version 6 ----
    /// The level the service's prefixes are announced at after the transition before it,
    /// when it is not the level its state implied before graded announcements (format 6).
    Level(LevelRecord),
    /// The fleet guard's answer to a service's withdrawal by health (format 6): an input,
    /// so that what the routing daemons were asked is known from the journal alone.
    FleetGuard(FleetGuard),
    // ---- format version 7 ----
    /// An operator's drain of a guarded service forced past the fleet guard (`drain
    /// --force`): it took the fleet below the service's minimum, or etcd could not be read to
    /// tell (format 7). Written just before the drain's [`Event::Operator`] record.
    DrainForced(DrainForced),
}

/// A drain forced past the fleet guard (format 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainForced {
    /// The service.
    pub service: String,
    /// The reason given.
    pub reason: String,
    /// The caller's uid.
    pub uid: u32,
    /// The caller's pid.
    pub pid: i32,
    /// The service's rule in words (`minimum 3`, `at most 25% withdrawn`).
    pub rule: String,
    /// What the drain left of the fleet, as far as it could be told.
    pub fleet: ForcedFleet,
}

/// What a forced drain left of the fleet (format 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForcedFleet {
    /// Counted before the drain: the other sites announcing (what the drain leaves), and the
    /// sites in all, this one included.
    Counted {
        /// Other sites announcing.
        left_announcing: u32,
        /// Sites in all.
        sites: u32,
    },
    /// etcd could not be read to count the fleet.
    Unread {
        /// Why, in words.
        error: String,
    },
}

/// The level of an announcement (format 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// The plain route.
    Normal,
    /// De-preferred (an unhealthy service under `on_unhealthy = "deprefer"`).
    Depreferred,
    /// RFC 8326 GRACEFUL_SHUTDOWN during a drain's grace.
    GracefulShutdown,
}

/// Path attributes as journaled (format 6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// Times the local AS is prepended.
    pub as_path_prepend: u8,
    /// The MULTI_EXIT_DISC, if set.
    pub med: Option<u32>,
    /// RFC 1997 communities, each as one 32-bit number.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<(u32, u32, u32)>,
}

/// What a transition left a service's prefixes announced at (format 6): written right after
/// the transition when it is not what the state alone said before graded announcements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelRecord {
    /// The service.
    pub service: String,
    /// The level (`None`: withdrawn).
    pub level: Option<Level>,
    /// What the prefixes are announced with at that level.
    pub attributes: Attributes,
    /// In a grace: when it ends (ms since the epoch); the service is withdrawn then, also
    /// by a daemon restarted before.
    pub grace_until_ms: Option<i64>,
}

/// What the fleet guard answered a service's withdrawal by health (format 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetGuard {
    /// The service.
    pub service: String,
    /// Sequence number of the transition whose withdrawal was asked for.
    pub transition_seq: u64,
    /// The answer.
    pub answer: FleetAnswer,
}

/// The fleet guard's answer (format 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FleetAnswer {
    /// Withdrawn: enough other sites announce.
    Granted(FleetCount),
    /// Kept announced: too few other sites announce.
    Held(FleetCount),
    /// etcd could not be reached; `held`: kept announced (`on_unreachable = "hold"`), else
    /// withdrawn as without a guard (`"local"`).
    Blind {
        /// Since when etcd could not be reached (ms).
        since_ms: i64,
        /// Why, in words.
        reason: String,
        /// Whether the withdrawal was held.
        held: bool,
    },
    /// A check marked `hard` failed while the withdrawal was held: withdrawn at once, whatever
    /// the fleet says (the guard never holds a hard check).
    HardCheck {
        /// The hard check that failed.
        check: String,
    },
}

/// The fleet as a site counted it when it asked (format 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCount {
    /// Sites announcing the service, this one included (it still announced).
    pub announcing: u32,
    /// Sites in all, this one included.
    pub sites: u32,
    /// The service's rule in words (`minimum 3`, `at most 25% withdrawn`).
    pub rule: String,
}

/// How a daemon run forms verdicts (format 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRule {
    /// An unhealthy verdict is formed while checks are pending when they could not make it
    /// healthy (the fsm's `Params::fail_early`).
    pub fail_early: bool,
}

/// One run of a `[hooks] on_transition` program (format 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRan {
    /// The service whose transition it was run for.
    pub service: String,
    /// The program.
    pub hook: String,
    /// Sequence number of the transition record.
    pub transition_seq: u64,
    /// `None`: exit 0; else why it failed (exit code and first line of output, timed out,
    /// could not start, or skipped because its queue was full).
    pub failure: Option<String>,
    /// How long it ran (ms).
    pub duration_ms: u64,
}

/// A routing daemon restarted (its control socket was re-created), one record per service
/// with prefixes there (format 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRestarted {
    /// The service.
    pub service: String,
    /// The daemon, in words (`bgpd`, `BIRD`).
    pub daemon: String,
    /// The service's prefixes wanted announced at that moment, to be re-announced.
    pub prefixes: Vec<PrefixRef>,
    /// Prefixes of every service wanted announced there at that moment.
    pub total: u64,
}

/// A run of results of one check, all equal to the check's previous result, at
/// `first_ms`, `first_ms + interval_ms`, ... (`count` of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Check name.
    pub check: String,
    /// Time of the first result (ms since the epoch): when its poll was due.
    pub first_ms: i64,
    /// Spacing of the results (the check's interval).
    pub interval_ms: u64,
    /// Number of results.
    pub count: u64,
}

impl Segment {
    /// The time of result `i` (from 0).
    pub fn time_of(&self, i: u64) -> i64 {
        let step = i64::try_from(self.interval_ms).unwrap_or(i64::MAX);
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.first_ms.saturating_add(step.saturating_mul(i))
    }

    /// The time of the last result.
    pub fn last_ms(&self) -> i64 {
        self.time_of(self.count.saturating_sub(1))
    }
}

/// Unchanged results of a service (format 2): journaled before any other input record of the
/// service, before a stop or reload, when asked (a replay while running) and at least hourly,
/// so that replay knows every result and its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runs {
    /// Service name.
    pub service: String,
    /// The runs, per check in the order their first result arrived.
    pub segments: Vec<Segment>,
}

/// A reload applied to one service by its driver (format 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconfigured {
    /// Service name.
    pub service: String,
    /// Its new effective parameters.
    pub params: ServiceParams,
    /// Its new flap damping parameters (`None`: off).
    pub damping: Option<DampingParams>,
}

/// A damping state restored at a start (format 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DampingRestored {
    /// The state as journaled before the restart (replay reproduces from it bit for bit).
    pub state: DampingRecord,
    /// The penalty × 1000 decayed to the time of this record.
    pub penalty_now_milli: u64,
}

/// A rejected reload (format 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadRejected {
    /// Who asked: the caller's uid over the control socket, `None` for SIGHUP.
    pub uid: Option<u32>,
    /// Every reason, one line each (config errors name file, line and key).
    pub errors: Vec<String>,
}

/// Flap damping parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DampingParams {
    /// Penalty per health-caused withdrawal.
    pub penalty: u32,
    /// Suppress above.
    pub suppress: u32,
    /// Reuse below.
    pub reuse: u32,
    /// Half-life.
    pub half_life_ms: u64,
    /// Longest suppression.
    pub max_suppress_ms: u64,
}

/// A service's damping parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDamping {
    /// Service name.
    pub service: String,
    /// The parameters, `None` when damping is off.
    pub params: Option<DampingParams>,
}

/// A service's damping state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DampingRecord {
    /// Service name.
    pub service: String,
    /// Penalty × 1000 at `at_ms`.
    pub penalty_milli: u64,
    /// When the penalty was computed.
    pub at_ms: i64,
    /// Since when it is suppressed.
    pub suppressed_since_ms: Option<i64>,
    /// Restored from the journal at a start (not a change).
    pub restored: bool,
}

/// A pending check counted as failed because its pending timeout expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTimeout {
    /// Service name.
    pub service: String,
    /// Check name.
    pub check: String,
    /// Format 1: observations of the service since its previous observation record (always 0
    /// in format 2, which journals [`Runs`]).
    pub polls_since_last_edge: u64,
}

/// A count of observations without a record of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Polls {
    /// Service name.
    pub service: String,
    /// Observations of the service since its previous observation record.
    pub polls: u64,
}

/// A configuration reload that was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Hash of the new config file.
    pub config_hash: String,
    /// Services added.
    pub added: Vec<String>,
    /// Services removed (drained, withdrawn).
    pub removed: Vec<String>,
    /// Services whose parameters, checks or prefixes changed (state and counters kept).
    pub changed: Vec<String>,
    /// The effective parameters of every service after the reload.
    pub services: Vec<ServiceParams>,
}

/// A journal moved aside because it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalReset {
    /// Where the old journal went.
    pub moved_to: String,
    /// Why it could not be used.
    pub reason: String,
}

/// Records lost to write errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalGap {
    /// Time of the first failed write (ms since the epoch).
    pub from_ms: i64,
    /// Time of the last failed write.
    pub to_ms: i64,
    /// Records lost.
    pub lost_records: u64,
    /// The last error.
    pub error: String,
}

impl Event {
    /// Whether this kind of record exists only from format version 2 on.
    pub fn is_version_2(&self) -> bool {
        matches!(
            self,
            Event::Runs(_)
                | Event::Reconfigured(_)
                | Event::DampingRestored(_)
                | Event::ReloadRejected(_)
        )
    }

    /// The format version that introduced this kind of record.
    pub fn introduced(&self) -> u8 {
        match self {
            Event::Level(_)
            | Event::Transition(Transition {
                cause: Cause::GraceEnded,
                ..
            })
            | Event::FleetGuard(_) => 6,
            Event::DrainForced(_) => 7,
            Event::VerdictRule(_) => 5,
            Event::RoutingRestarted(_) | Event::HookRan(_) => 4,
            e if e.is_version_2() => 2,
            _ => 1,
        }
    }

    /// The format version a record of this kind is written in: 3, or the format that added
    /// the kind (format 4 is format 3 with [`Event::RoutingRestarted`] and [`Event::HookRan`]
    /// appended, format 5 format 4 with [`Event::VerdictRule`], format 6 format 5 with
    /// [`Event::Level`], [`Cause::GraceEnded`] and [`Event::FleetGuard`], format 7 format 6
    /// with [`Event::DrainForced`]; a build that knows an older format skips those records
    /// alone).
    pub fn format(&self) -> u8 {
        self.introduced().max(3)
    }

    /// The service the record is about, if any (used for the per-service index).
    pub fn service(&self) -> Option<&str> {
        match self {
            Event::DaemonStarted(_) | Event::DaemonStopped(_) | Event::VerdictRule(_) => None,
            Event::Transition(t) => Some(&t.service),
            Event::CheckEdge(e) => Some(&e.service),
            Event::Apply(a) => Some(&a.service),
            Event::Drift(d) => Some(&d.service),
            Event::PendingTimeout(t) => Some(&t.service),
            Event::Polls(p) => Some(&p.service),
            Event::ServiceDamping(d) => Some(&d.service),
            Event::Damping(d) => Some(&d.service),
            Event::Runs(r) => Some(&r.service),
            Event::Reconfigured(r) => Some(&r.service),
            Event::DampingRestored(d) => Some(&d.state.service),
            Event::RoutingRestarted(r) => Some(&r.service),
            Event::HookRan(h) => Some(&h.service),
            Event::Level(l) => Some(&l.service),
            Event::FleetGuard(g) => Some(&g.service),
            Event::DrainForced(d) => Some(&d.service),
            Event::Operator(OperatorAction {
                kind: OperatorKind::Drain { service, .. } | OperatorKind::Undrain { service },
                ..
            }) => Some(service),
            Event::Reconciled(_)
            | Event::Reloaded(_)
            | Event::Operator(_)
            | Event::JournalReset(_)
            | Event::JournalGap(_)
            | Event::ReloadRejected(_) => None,
        }
    }
}

/// What start-up reconciliation decided for one prefix (docs/ARCHITECTURE.md,
/// "Start-up reconciliation").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileDecision {
    /// Rule 1: in FRR, journal says announced, still configured: kept, service restored.
    Kept,
    /// Rule 2: in FRR, journal says announced, no longer configured: withdrawn (orphan).
    Orphan,
    /// Rule 3: journal says announced, FRR lacks it: the service starts over.
    Missing,
    /// Rule 4: journal says withdrawn or draining, FRR has it: withdrawn.
    Withdrawn,
    /// Rule 5: in FRR, configured, unknown to the journal: adopted.
    Adopted,
    /// Rule 6: after a reboot, in FRR and configured: withdrawn.
    Reboot,
}

/// One reconciliation decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileItem {
    /// The service the prefix belongs (or belonged) to.
    pub service: String,
    /// The prefix.
    pub prefix: PrefixRef,
    /// The decision.
    pub decision: ReconcileDecision,
}

/// Start-up reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    /// Whether the boot id changed since the previous start.
    pub rebooted: bool,
    /// The managed or journaled prefixes found configured in FRR.
    pub found: Vec<PrefixRef>,
    /// Decisions.
    pub items: Vec<ReconcileItem>,
    /// vtysh binaries whose FRR could not be read (with the error): nothing was decided there.
    pub unreadable: Vec<(String, String)>,
}

/// An operator action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorKind {
    /// `anycastd stop --keep-announced`: exit without withdrawing (planned restart).
    Handover,
    /// `anycastd stop`: stop and withdraw.
    Stop,
    /// `anycastd drain`.
    Drain {
        /// The service.
        service: String,
        /// The reason given.
        reason: String,
        /// When it ends by itself (ms since the epoch), if `--for` was given.
        expires_at_ms: Option<i64>,
    },
    /// `anycastd undrain`.
    Undrain {
        /// The service.
        service: String,
    },
}

/// An operator action with who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAction {
    /// What.
    pub kind: OperatorKind,
    /// The caller's uid.
    pub uid: u32,
    /// The caller's pid.
    pub pid: i32,
}

/// A prefix found in the wrong state in FRR while running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The owning service.
    pub service: String,
    /// The prefix.
    pub prefix: PrefixRef,
    /// Whether FRR had the `network` line.
    pub present: bool,
    /// Whether it should have been announced.
    pub wanted: bool,
}

// ---- conversions from the fsm's own types ----

impl From<&fsm::DrainCause> for DrainCause {
    fn from(cause: &fsm::DrainCause) -> Self {
        match cause {
            fsm::DrainCause::Operator {
                reason,
                expires_at,
                uid,
            } => DrainCause::Operator {
                reason: reason.clone(),
                expires_at_ms: expires_at.map(|t| t.0),
                uid: *uid,
            },
            fsm::DrainCause::Shutdown => DrainCause::Shutdown,
            fsm::DrainCause::Removed => DrainCause::Removed,
        }
    }
}

impl From<&DrainCause> for fsm::DrainCause {
    fn from(cause: &DrainCause) -> Self {
        match cause {
            DrainCause::Operator {
                reason,
                expires_at_ms,
                uid,
            } => fsm::DrainCause::Operator {
                reason: reason.clone(),
                expires_at: expires_at_ms.map(fsm::Timestamp),
                uid: *uid,
            },
            DrainCause::Shutdown => fsm::DrainCause::Shutdown,
            DrainCause::Removed => fsm::DrainCause::Removed,
        }
    }
}

impl From<&fsm::State> for State {
    fn from(state: &fsm::State) -> Self {
        match state {
            fsm::State::Starting => State::Starting,
            fsm::State::Healthy => State::Healthy,
            fsm::State::Unhealthy => State::Unhealthy,
            fsm::State::Draining(cause) => State::Draining(cause.into()),
        }
    }
}

impl From<&State> for fsm::State {
    fn from(state: &State) -> Self {
        match state {
            State::Starting => fsm::State::Starting,
            State::Healthy => fsm::State::Healthy,
            State::Unhealthy => fsm::State::Unhealthy,
            State::Draining(cause) => fsm::State::Draining(cause.into()),
        }
    }
}

impl From<&fsm::Observation> for Observation {
    fn from(observation: &fsm::Observation) -> Self {
        match observation {
            fsm::Observation::Pass => Observation::Pass,
            fsm::Observation::Fail(reason) => Observation::Fail(reason.clone()),
            fsm::Observation::Pending => Observation::Pending,
        }
    }
}

impl From<&Observation> for fsm::Observation {
    fn from(observation: &Observation) -> Self {
        match observation {
            Observation::Pass => fsm::Observation::Pass,
            Observation::Fail(reason) => fsm::Observation::Fail(reason.clone()),
            Observation::Pending => fsm::Observation::Pending,
        }
    }
}

impl From<&fsm::Damping> for DampingParams {
    fn from(d: &fsm::Damping) -> Self {
        DampingParams {
            penalty: d.penalty,
            suppress: d.suppress,
            reuse: d.reuse,
            half_life_ms: d.half_life.as_millis() as u64,
            max_suppress_ms: d.max_suppress.as_millis() as u64,
        }
    }
}

impl From<&DampingParams> for fsm::Damping {
    fn from(d: &DampingParams) -> Self {
        fsm::Damping {
            penalty: d.penalty,
            suppress: d.suppress,
            reuse: d.reuse,
            half_life: std::time::Duration::from_millis(d.half_life_ms),
            max_suppress: std::time::Duration::from_millis(d.max_suppress_ms),
        }
    }
}

impl DampingRecord {
    /// The fsm's damping state.
    pub fn state(&self) -> fsm::DampingState {
        fsm::DampingState {
            penalty_milli: self.penalty_milli,
            at: fsm::Timestamp(self.at_ms),
            suppressed_since: self.suppressed_since_ms.map(fsm::Timestamp),
        }
    }
}

impl From<fsm::Level> for Level {
    fn from(level: fsm::Level) -> Self {
        match level {
            fsm::Level::Normal => Level::Normal,
            fsm::Level::Depreferred => Level::Depreferred,
            fsm::Level::GracefulShutdown => Level::GracefulShutdown,
        }
    }
}

impl From<Level> for fsm::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Normal => fsm::Level::Normal,
            Level::Depreferred => fsm::Level::Depreferred,
            Level::GracefulShutdown => fsm::Level::GracefulShutdown,
        }
    }
}
