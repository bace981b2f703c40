//! Journal records in words: one module renders them for `history`, `replay`, `status`, the
//! logs and the control socket, so that every surface says the same thing the same way.
//! Nothing here reads or decides; it only formats.

use anycastd_journal::wire::{self, Event};
use anycastd_journal::Record;
use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 UTC with milliseconds.
pub fn format_time(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| at_ms.to_string())
}

/// A prefix with its VRF, as every message writes it: `203.0.113.123/32 (vrf 123)`.
pub fn prefix_with_vrf(prefix: &str, vrf: Option<&str>) -> String {
    match vrf {
        Some(vrf) => format!("{prefix} (vrf {vrf})"),
        None => prefix.to_owned(),
    }
}

/// The words of the backend kind journaled as `kind` (the first kind's for a name this
/// build does not know: what it journals can only be put in generic words).
fn words(kind: &str) -> &'static dyn crate::routing::Kind {
    crate::routing::BackendKind::from_name(kind)
        .unwrap_or(crate::routing::KINDS[0])
        .words()
}

/// A prefix in its place, from its parts, as the backend kind journaled as `kind` writes
/// it ([`crate::routing::Kind::place_text`]).
pub fn place_text(prefix: &str, place: Option<&str>, kind: &str) -> String {
    words(kind).place_text(prefix, place)
}

/// A prefix in its place with its backend's instance when the place alone could mislead
/// (the same place and prefix at two instances, before and after a reload, must never read
/// the same; within one configuration a place has one instance).
pub fn place_text_at(prefix: &str, place: Option<&str>, kind: &str, instance: &str) -> String {
    words(kind).place_text_at(prefix, place, instance)
}

/// A configured prefix in words (as [`prefix_text`]).
pub fn route_text(route: &crate::routing::Route) -> String {
    route.text()
}

/// A journaled prefix reference in words: `203.0.113.123/32 (vrf 123)` ([`place_text_at`]).
pub fn prefix_text(p: &wire::PrefixRef) -> String {
    place_text_at(&p.prefix, p.vrf.as_deref(), &p.backend, &p.instance)
}

/// A journaled prefix with its backend's instance whatever it is (`203.0.113.1/32 through
/// /usr/bin/vtysh`), for a prefix that is not where the configuration has one that reads
/// the same (an orphan, a reload's old place).
pub fn prefix_text_with_instance(p: &wire::PrefixRef) -> String {
    words(&p.backend).place_text_with_instance(&p.prefix, p.vrf.as_deref(), &p.instance)
}

/// A journaled prefix with its routing daemon: `203.0.113.123/32 (FRR, vrf 123)`.
pub fn prefix_with_backend(p: &wire::PrefixRef) -> String {
    words(&p.backend).prefix_with_backend(
        &backend_label(p),
        &p.prefix,
        p.vrf.as_deref(),
        &p.instance,
    )
}

/// The routing daemon of a journaled prefix in words: `FRR` (the journaled name for a kind
/// this build does not know).
pub fn backend_label(p: &wire::PrefixRef) -> String {
    match crate::routing::BackendKind::from_name(&p.backend) {
        Some(kind) => kind.label().to_owned(),
        None => p.backend.clone(),
    }
}

/// The routing daemons of some prefixes in words: `FRR`, `FRR and BIRD`.
pub fn backends_label<'a>(prefixes: impl IntoIterator<Item = &'a wire::PrefixRef>) -> String {
    let mut labels: Vec<String> = Vec::new();
    for p in prefixes {
        let label = backend_label(p);
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    if labels.is_empty() {
        "the routing daemon".to_owned()
    } else {
        labels.join(" and ")
    }
}

/// A backend as [`crate::routing::BackendId`]'s display writes it, in words: `FRR through
/// /usr/bin/vtysh` (a display without a kind's name in front is the first kind's).
pub fn backend_text(shown: &str) -> String {
    let (kind, instance) = shown
        .split_once(':')
        .and_then(|(kind, instance)| {
            Some((crate::routing::BackendKind::from_name(kind)?, instance))
        })
        .unwrap_or((crate::routing::KINDS[0], shown));
    kind.instance_text(instance)
}

fn prefixes_text(prefixes: &[wire::PrefixRef]) -> String {
    prefixes
        .iter()
        .map(prefix_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The failure a check pending past its timeout counts as.
pub fn no_result(timeout: std::time::Duration) -> String {
    format!("no result within {} ms", timeout.as_millis())
}

/// A state's name, with the drain cause.
pub fn state_text(state: &wire::State) -> String {
    match state {
        wire::State::Starting => "starting".into(),
        wire::State::Healthy => "healthy".into(),
        wire::State::Unhealthy => "unhealthy".into(),
        wire::State::Draining(wire::DrainCause::Shutdown) => "draining (shutdown)".into(),
        wire::State::Draining(wire::DrainCause::Removed) => "draining (removed)".into(),
        wire::State::Draining(wire::DrainCause::Operator { reason, uid, .. }) => {
            format!("draining (operator uid {uid}: {reason})")
        }
    }
}

fn observation_text(o: &wire::Observation) -> String {
    match o {
        wire::Observation::Pass => "pass".into(),
        wire::Observation::Fail(reason) => format!("fail: {reason}"),
        wire::Observation::Pending => "pending (no result yet)".into(),
    }
}

/// Why a transition happened, in words.
pub fn cause_text(cause: &wire::Cause) -> String {
    match cause {
        wire::Cause::Verdict { healthy, checks } => {
            let failing: Vec<String> = checks
                .iter()
                .filter_map(|c| match &c.observation {
                    wire::Observation::Fail(reason) => {
                        Some(format!("check {} failed: {reason}", c.check))
                    }
                    _ => None,
                })
                .collect();
            match (healthy, failing.is_empty()) {
                (true, true) => "all checks pass".into(),
                // With `require`, a healthy verdict may have failing checks: say which.
                (true, false) => format!(
                    "{} of {} checks pass; {}",
                    checks.len() - failing.len(),
                    checks.len(),
                    failing.join("; ")
                ),
                (false, _) => failing.join("; "),
            }
        }
        wire::Cause::Drain => "drained".into(),
        wire::Cause::Undrain => "undrained".into(),
        wire::Cause::DrainExpired => "drain expired".into(),
        wire::Cause::Restored => {
            "restored after a restart, prefixes still in the routing daemon".into()
        }
        wire::Cause::Adopted => "adopted prefixes found in the routing daemon".into(),
        wire::Cause::Restart => "reset at start-up".into(),
        wire::Cause::Unsuppressed => "flap damping no longer suppresses it, checks pass".into(),
        wire::Cause::GraceEnded => "the drain's grace is over".into(),
    }
}

/// Why a transition to `to` happened, in words: as [`cause_text`], except that a grace's
/// end names whose grace it was (`the stop's grace is over` for a stop's).
pub fn cause_in(cause: &wire::Cause, to: &wire::State) -> String {
    match (cause, to) {
        (wire::Cause::GraceEnded, wire::State::Draining(wire::DrainCause::Shutdown)) => {
            "the stop's grace is over".into()
        }
        _ => cause_text(cause),
    }
}

/// Why a transition happened, in words ([`cause_in`]).
pub fn transition_cause_text(t: &wire::Transition) -> String {
    cause_in(&t.cause, &t.to)
}

/// The kind of a record, for JSON consumers.
pub fn kind(event: &Event) -> &'static str {
    match event {
        Event::DaemonStarted(_) => "daemon_started",
        Event::DaemonStopped(_) => "daemon_stopped",
        Event::Transition(_) => "transition",
        Event::CheckEdge(_) => "check",
        Event::Apply(_) => "apply",
        Event::Reconciled(_) => "reconciled",
        Event::Operator(_) => "operator",
        Event::Drift(_) => "drift",
        Event::JournalReset(_) => "journal_reset",
        Event::JournalGap(_) => "journal_gap",
        Event::Reloaded(_) => "reloaded",
        Event::PendingTimeout(_) => "pending_timeout",
        Event::Polls(_) => "polls",
        Event::ServiceDamping(_) => "damping_parameters",
        Event::Damping(_) => "damping",
        Event::Runs(_) => "runs",
        Event::Reconfigured(_) => "reconfigured",
        Event::DampingRestored(_) => "damping_restored",
        Event::ReloadRejected(_) => "reload_rejected",
        Event::RoutingRestarted(_) => "routing_restarted",
        Event::HookRan(_) => "hook",
        Event::VerdictRule(_) => "verdict_rule",
        Event::Level(_) => "level",
        Event::FleetGuard(_) => "fleet_guard",
        Event::DrainForced(_) => "drain_forced",
    }
}

/// What happened, in one line (without time and service): one arm per record kind, the one
/// place each is put in words. The longer texts have a function each, by group: the daemon's
/// own records, a service's, flap damping's, the routing daemons'.
pub fn event_text(event: &Event) -> String {
    match event {
        // The daemon's own records.
        Event::DaemonStarted(s) => format!(
            "daemon started: anycastd {}, {} service(s)",
            s.version,
            s.services.len()
        ),
        Event::DaemonStopped(s) => stopped_text(s),
        Event::Reconciled(r) => reconciled_text(r, &[]),
        Event::Operator(o) => operator_text(o),
        Event::DrainForced(d) => format!(
            "operator: drain {} ({}) forced past the fleet guard (uid {}, pid {}): {}",
            d.service,
            d.reason,
            d.uid,
            d.pid,
            forced_fleet_text(&d.service, &d.rule, &d.fleet)
        ),
        Event::ReloadRejected(r) => reload_rejected_text(r),
        Event::Reloaded(r) => format!(
            "configuration reloaded (config {}): added [{}], removed [{}], changed [{}]",
            r.config_hash,
            r.added.join(", "),
            r.removed.join(", "),
            r.changed.join(", ")
        ),
        Event::JournalReset(r) => format!(
            "journal reset: the previous journal could not be read ({}) and was moved to {}",
            r.reason, r.moved_to
        ),
        Event::JournalGap(g) => format!(
            "journal gap: {} record(s) lost between {} and {} ({})",
            g.lost_records,
            format_time(g.from_ms),
            format_time(g.to_ms),
            g.error
        ),
        Event::VerdictRule(r) => verdict_rule_text(r).into(),
        // A service's inputs and transitions.
        Event::Transition(t) => transition_text(t),
        Event::Level(l) => level_text(l),
        Event::CheckEdge(e) => format!("check {}: {}", e.check, observation_text(&e.observation)),
        Event::PendingTimeout(t) => format!(
            "check {}: no result within its pending timeout, counted as failed",
            t.check
        ),
        Event::Polls(p) => format!("{} more check result(s) without change", p.polls),
        Event::Runs(r) => {
            let results: u64 = r.segments.iter().map(|s| s.count).sum();
            format!("{results} unchanged check result(s)")
        }
        Event::Reconfigured(r) => format!(
            "reconfigured by the reload: rise {}, fall {}, {} check(s), {} prefix(es){}",
            r.params.rise,
            r.params.fall,
            r.params.checks.len(),
            r.params.prefixes.len(),
            if r.damping.is_some() {
                ", flap damping on"
            } else {
                ""
            }
        ),
        Event::HookRan(h) => hook_text(h),
        Event::FleetGuard(g) => fleet_guard_text(g),
        // Flap damping.
        Event::ServiceDamping(d) => damping_params_text(d),
        Event::Damping(d) => damping_text(d),
        Event::DampingRestored(d) => damping_restored_text(d),
        // The routing daemons.
        Event::Apply(a) => apply_text(a),
        Event::RoutingRestarted(r) => routing_restarted_text(r),
        Event::Drift(d) => drift_text(d),
    }
}

fn stopped_text(s: &wire::DaemonStopped) -> String {
    match &s.outcome {
        wire::StopOutcome::WithdrawnAll => {
            format!("daemon stopped ({}): every prefix withdrawn", s.reason)
        }
        wire::StopOutcome::Left(left) => format!(
            "daemon stopped ({}): NOT verified withdrawn: {}",
            s.reason,
            prefixes_text(left)
        ),
        wire::StopOutcome::HandedOver => format!(
            "daemon stopped ({}): handed over, prefixes left announced",
            s.reason
        ),
    }
}

fn operator_text(o: &wire::OperatorAction) -> String {
    let what = match &o.kind {
        wire::OperatorKind::Handover => "stop --keep-announced".to_owned(),
        wire::OperatorKind::Stop => "stop".to_owned(),
        wire::OperatorKind::Drain {
            service,
            reason,
            expires_at_ms,
        } => match expires_at_ms {
            Some(at) => format!("drain {service} until {} ({reason})", format_time(*at)),
            None => format!("drain {service} ({reason})"),
        },
        wire::OperatorKind::Undrain { service } => format!("undrain {service}"),
    };
    format!("operator: {what} (uid {}, pid {})", o.uid, o.pid)
}

/// What a drain forced past the fleet guard left of the fleet: `draining here leaves 1 of 3
/// sites announcing dns, minimum 2`, or that it could not be counted (why).
pub fn forced_fleet_text(service: &str, rule: &str, fleet: &wire::ForcedFleet) -> String {
    match fleet {
        wire::ForcedFleet::Counted {
            left_announcing,
            sites,
        } => format!(
            "draining here leaves {left_announcing} of {sites} sites announcing {service}, {rule}"
        ),
        wire::ForcedFleet::Unread { error } => {
            format!("the fleet of {service} could not be counted ({error}), {rule}")
        }
    }
}

fn reload_rejected_text(r: &wire::ReloadRejected) -> String {
    let who = match r.uid {
        Some(uid) => format!("uid {uid}"),
        None => "SIGHUP".to_owned(),
    };
    format!(
        "reload rejected ({who}), the running configuration is kept: {}",
        r.errors.join("; ")
    )
}

/// The fleet guard's answer: `withdrawal held by the fleet guard: withdrawing here would
/// leave 2 of 9 sites announcing dns, minimum 3`. The journaled count includes the asking
/// site (it still announced when it asked); the words count the fleet without it, which is
/// what the answer is about, so that a held count never reads as if the minimum were met.
pub fn fleet_guard_text(g: &wire::FleetGuard) -> String {
    let count = |c: &wire::FleetCount, leave: &str| {
        format!(
            "withdrawing here {leave} {} of {} sites announcing {}, {}",
            c.announcing.saturating_sub(1),
            c.sites,
            g.service,
            c.rule
        )
    };
    match &g.answer {
        wire::FleetAnswer::Granted(c) => {
            format!("withdrawal granted by the fleet guard: {}", count(c, "leaves"))
        }
        wire::FleetAnswer::Held(c) => {
            format!(
                "withdrawal held by the fleet guard: {}",
                count(c, "would leave")
            )
        }
        wire::FleetAnswer::Blind {
            since_ms,
            reason,
            held,
        } => format!(
            "the fleet guard is blind since {} ({reason}): withdrawal {}",
            format_time(*since_ms),
            if *held {
                "held (on_unreachable = \"hold\")"
            } else {
                "decided locally (on_unreachable = \"local\")"
            }
        ),
        wire::FleetAnswer::HardCheck { check } => format!(
            "withdrawal made at once, no longer held by the fleet guard: hard check \"{check}\" failed"
        ),
    }
}

fn verdict_rule_text(r: &wire::VerdictRule) -> &'static str {
    if r.fail_early {
        "verdict rule: unhealthy as soon as the checks that answered decide it, healthy only once every check has answered"
    } else {
        "verdict rule: every verdict waits until no check is pending"
    }
}

fn transition_text(t: &wire::Transition) -> String {
    let change = match t.change {
        wire::Change::Announce => format!("announce {}", prefixes_text(&t.prefixes)),
        wire::Change::Withdraw => format!("withdraw {}", prefixes_text(&t.prefixes)),
        wire::Change::None => "no change".into(),
    };
    format!(
        "{} -> {}: {change} ({})",
        state_text(&t.from),
        state_text(&t.to),
        transition_cause_text(t)
    )
}

/// A level in words: `normal`, `de-preferred`, `graceful shutdown`, `withdrawn`.
pub fn level_name(level: Option<wire::Level>) -> &'static str {
    match level {
        None => "withdrawn",
        Some(wire::Level::Normal) => "normal",
        Some(wire::Level::Depreferred) => "de-preferred",
        Some(wire::Level::GracefulShutdown) => "graceful shutdown",
    }
}

/// A level record: `de-preferred (as-path +3, MED 1000, community 65000:666)`,
/// `graceful shutdown until 2026-12-07T18:00:30.000Z (community 65535:0)`.
fn level_text(l: &wire::LevelRecord) -> String {
    let mut text = format!("announced {}", level_name(l.level));
    if l.level.is_none() {
        text = "withdrawn".into();
    }
    if let Some(until) = l.grace_until_ms {
        text.push_str(&format!(" until {}", format_time(until)));
    }
    if l.level.is_some() {
        text.push_str(&format!(" ({})", crate::bgp::attributes_of(&l.attributes)));
    }
    text
}

/// A level a reload changed (a level record that follows no transition):
/// `level changed by a reload: withdrawn`.
pub fn reload_level_text(l: &wire::LevelRecord) -> String {
    format!("level changed by a reload: {}", level_text(l))
}

fn hook_text(h: &wire::HookRan) -> String {
    match &h.failure {
        None => format!(
            "hook {} for record {}: exit 0 after {} ms",
            h.hook, h.transition_seq, h.duration_ms
        ),
        Some(why) => format!(
            "hook {} for record {}: FAILED after {} ms: {why}",
            h.hook, h.transition_seq, h.duration_ms
        ),
    }
}

fn damping_params_text(d: &wire::ServiceDamping) -> String {
    match &d.params {
        Some(p) => format!(
            "flap damping: penalty {} per withdrawal, suppress above {}, reuse below {}, half-life {} s, at most {} s suppressed",
            p.penalty,
            p.suppress,
            p.reuse,
            p.half_life_ms / 1000,
            p.max_suppress_ms / 1000
        ),
        None => "flap damping off".into(),
    }
}

fn damping_text(d: &wire::DampingRecord) -> String {
    let penalty = d.penalty_milli as f64 / 1000.0;
    let what = if d.restored { "restored: " } else { "" };
    match d.suppressed_since_ms {
        Some(since) => format!(
            "flap damping: {what}penalty {penalty:.0}, SUPPRESSED since {}",
            format_time(since)
        ),
        None => format!("flap damping: {what}penalty {penalty:.0}, not suppressed"),
    }
}

fn damping_restored_text(d: &wire::DampingRestored) -> String {
    let now = d.penalty_now_milli as f64 / 1000.0;
    match d.state.suppressed_since_ms {
        Some(since) => format!(
            "flap damping restored after the restart: penalty {now:.0}, SUPPRESSED since {}",
            format_time(since)
        ),
        None => {
            format!("flap damping restored after the restart: penalty {now:.0}, not suppressed")
        }
    }
}

fn apply_text(a: &wire::Apply) -> String {
    let verb = match a.change {
        wire::Change::Announce => "announce",
        wire::Change::Withdraw => "withdraw",
        wire::Change::None => "keep",
    };
    // Records start at 1: 0 says no record decided it (its journal write failed).
    let decision = match a.decision_seq {
        0 => "no deciding record".to_owned(),
        seq => format!("decision {seq}"),
    };
    format!(
        "{} {verb} {}: {} ({decision})",
        backend_label(&a.prefix),
        prefix_text(&a.prefix),
        outcome_text(&a.outcome, &backend_label(&a.prefix))
    )
}

fn routing_restarted_text(r: &wire::RoutingRestarted) -> String {
    format!(
        "{} restarted; re-announcing {} prefix(es) of this service{} ({} in all there)",
        r.daemon,
        r.prefixes.len(),
        if r.prefixes.is_empty() {
            String::new()
        } else {
            format!(": {}", prefixes_text(&r.prefixes))
        },
        r.total
    )
}

fn drift_text(d: &wire::Drift) -> String {
    if d.present && d.wanted {
        return format!(
            "drift: {} was announced with other attributes in {}; repairing",
            prefix_text(&d.prefix),
            backend_label(&d.prefix)
        );
    }
    format!(
        "drift: {} was {} in {}, {} wanted; repairing",
        prefix_text(&d.prefix),
        if d.present { "present" } else { "absent" },
        backend_label(&d.prefix),
        if d.wanted {
            "announcement"
        } else {
            "withdrawal"
        }
    )
}

/// An outcome in words; `daemon` names the routing daemon (`FRR`).
fn outcome_text(outcome: &wire::Outcome, daemon: &str) -> String {
    match outcome {
        wire::Outcome::Applied => "applied".to_owned(),
        wire::Outcome::AlreadySo => format!("already so in {daemon}"),
        wire::Outcome::Failed(e) => format!("FAILED: {e}"),
        wire::Outcome::Superseded => {
            format!("superseded by a newer decision before it was applied ({daemon} unchanged)")
        }
    }
}

/// What start-up reconciliation found and decided, with the FRR outcome of each decision
/// when `applies` (the outcomes of its decisions) are given.
fn reconciled_text(r: &wire::Reconciled, applies: &[&Record]) -> String {
    let mut parts = Vec::new();
    if r.rebooted {
        parts.push("host rebooted".to_owned());
    }
    for item in &r.items {
        let p = prefix_text(&item.prefix);
        let s = &item.service;
        let daemon = backend_label(&item.prefix);
        let what = match item.decision {
            wire::ReconcileDecision::Kept => {
                format!("keep {p} of {s} (announced before the restart, still in {daemon})")
            }
            wire::ReconcileDecision::Orphan => {
                // Its instance named, as the configuration may have it elsewhere now.
                let p = prefix_text_with_instance(&item.prefix);
                format!("withdraw {p} of {s} (orphan: no longer configured there)")
            }
            wire::ReconcileDecision::Missing => {
                format!("{p} of {s} missing from {daemon} although announced before the restart")
            }
            wire::ReconcileDecision::Withdrawn => {
                format!("withdraw {p} of {s} (in {daemon}, but not announced at the last stop)")
            }
            wire::ReconcileDecision::Adopted => {
                format!("adopt {p} of {s} (configured and already in {daemon})")
            }
            wire::ReconcileDecision::Reboot => format!("withdraw {p} of {s} (the host rebooted)"),
        };
        let outcome = applies
            .iter()
            .rev()
            .find_map(|record| match &record.event {
                Event::Apply(a) if a.prefix == item.prefix => Some(match &a.outcome {
                    wire::Outcome::AlreadySo => "already so".to_owned(),
                    other => outcome_text(other, &daemon),
                }),
                _ => None,
            })
            .map(|o| format!(": {daemon} {o}"))
            .unwrap_or_default();
        parts.push(format!("{what}{outcome}"));
    }
    for (backend, error) in &r.unreadable {
        parts.push(format!(
            "could not read {}: {error} (nothing decided there)",
            backend_text(backend)
        ));
    }
    if parts.is_empty() {
        "start-up reconciliation: nothing to do".into()
    } else {
        format!("start-up reconciliation: {}", parts.join("; "))
    }
}

/// A prefix, its last outcome (with its time), the failures journaled for it and the last
/// failure's error (with its time).
type PrefixOutcome<'a> = (
    &'a wire::PrefixRef,
    Option<(&'a wire::Outcome, i64)>,
    usize,
    Option<(&'a str, i64)>,
);

/// What the routing daemon did with a decision, from its outcome records. `after_poll`: the decision's time
/// is the time the poll that caused it was due (a check's verdict), so a timed-out poll's
/// decision came a timeout later.
fn routing_outcome(
    at_ms: i64,
    prefixes: &[wire::PrefixRef],
    applies: &[&Record],
    after_poll: bool,
) -> String {
    // The last outcome of each prefix, its time, and the failures before it.
    let mut last: Vec<PrefixOutcome> = prefixes.iter().map(|p| (p, None, 0, None)).collect();
    for record in applies {
        let Event::Apply(a) = &record.event else {
            continue;
        };
        if let Some(entry) = last.iter_mut().find(|(p, _, _, _)| **p == a.prefix) {
            if let wire::Outcome::Failed(e) = &a.outcome {
                entry.2 += 1;
                entry.3 = Some((e.as_str(), record.at_ms));
            }
            entry.1 = Some((&a.outcome, record.at_ms));
        }
    }
    // One account per routing daemon (in a mixed service FRR may apply at once what BIRD
    // refuses and takes later), in the order of the decision's prefixes.
    let mut labels: Vec<String> = Vec::new();
    for (prefix, _, _, _) in &last {
        let label = backend_label(prefix);
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    let mut parts = Vec::new();
    for label in &labels {
        let group: Vec<PrefixOutcome> = last
            .iter()
            .filter(|(p, _, _, _)| backend_label(p) == *label)
            .cloned()
            .collect();
        parts.extend(daemon_outcome(label, &group, at_ms, after_poll));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join("; "))
    }
}

/// What one routing daemon (`daemon`, its label) did with its prefixes of a decision.
fn daemon_outcome(
    daemon: &str,
    last: &[PrefixOutcome],
    at_ms: i64,
    after_poll: bool,
) -> Vec<String> {
    let named = |list: &[&wire::PrefixRef]| {
        list.iter()
            .map(|p| prefix_text(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The final outcomes (applied, already so): when the last came, and the failed attempts
    // before them, so an outcome that took retries does not read as instant.
    let mut applied_at = None;
    let mut already_at = None;
    let mut failures_before = 0;
    let mut last_failure: Option<(i64, &str)> = None;
    let (mut already, mut superseded, mut unknown) = (0, vec![], vec![]);
    let mut failed: Vec<String> = Vec::new();
    for (prefix, outcome, failures, last_error) in last {
        let final_at = match outcome {
            Some((wire::Outcome::Applied, at)) => {
                applied_at = applied_at.max(Some(*at));
                Some(*at)
            }
            Some((wire::Outcome::AlreadySo, at)) => {
                already += 1;
                already_at = already_at.max(Some(*at));
                Some(*at)
            }
            Some((wire::Outcome::Superseded, _)) => {
                superseded.push(*prefix);
                None
            }
            Some((wire::Outcome::Failed(e), _)) => {
                failed.push(format!("{}: {e}", prefix_text(prefix)));
                None
            }
            None => {
                unknown.push(*prefix);
                None
            }
        };
        if let (Some(_), Some((error, at))) = (final_at, last_error) {
            failures_before += failures;
            if last_failure.is_none_or(|(latest, _)| *at >= latest) {
                last_failure = Some((*at, *error));
            }
        }
    }
    let timed = |verb: &str, done: i64| {
        let ms = (done - at_ms).max(0);
        if after_poll {
            format!("{daemon} {verb} {ms} ms after the deciding poll")
        } else {
            format!("{daemon} {verb} in {ms} ms")
        }
    };
    let failures_text = match last_failure {
        Some((_, error)) if failures_before > 0 => {
            format!(", {failures_before} failed attempt(s) before (the last: {error})")
        }
        _ => String::new(),
    };
    let mut parts = Vec::new();
    if let Some(done) = applied_at {
        let mut text = timed("applied", done);
        if already > 0 {
            text.push_str(&format!(" ({already} already so)"));
        }
        text.push_str(&failures_text);
        parts.push(text);
    } else if let Some(done) = already_at.filter(|_| failures_before > 0) {
        // It failed first (BIRD not running, say) and was found so only later: how long and
        // why, not a bare "already so" that reads as an instant no-op.
        parts.push(format!("{}{failures_text}", timed("already so", done)));
    } else if already > 0 {
        parts.push(format!("{daemon} already so"));
    }
    if !superseded.is_empty() {
        let whole = superseded.len() == last.len();
        parts.push(if whole {
            format!(
                "superseded by a newer decision before {daemon} applied it ({daemon} unchanged)"
            )
        } else {
            format!(
                "superseded for {} by a newer decision ({daemon} unchanged)",
                named(&superseded)
            )
        });
    }
    if !failed.is_empty() {
        parts.push(format!(
            "{daemon} FAILED for {} (retrying)",
            failed.join("; ")
        ));
    }
    if !unknown.is_empty() && unknown.len() < last.len() || parts.is_empty() && !unknown.is_empty()
    {
        parts.push(format!(
            "no {daemon} outcome journaled for {}",
            named(&unknown)
        ));
    }
    parts
}

/// The text of an event: its record, and the FRR outcomes folded into it.
pub fn group_text(head: &Record, applies: &[&Record]) -> String {
    match &head.event {
        // A start-up's states: their FRR outcomes are the reconciliation's.
        Event::Transition(t)
            if t.change != wire::Change::None
                && !matches!(
                    t.cause,
                    wire::Cause::Restored | wire::Cause::Adopted | wire::Cause::Restart
                ) =>
        {
            let asked = applies
                .iter()
                .any(|r| matches!(r.event, Event::FleetGuard(_)));
            let applied = applies.iter().any(|r| matches!(r.event, Event::Apply(_)));
            if asked && !applied {
                // Held (or answered) first: the routing daemon's outcome folds into the
                // answer that let it go, timed from that answer.
                return format!(
                    "{}; asked of the fleet guard first (its answers follow)",
                    event_text(&head.event)
                );
            }
            format!(
                "{}{}",
                event_text(&head.event),
                routing_outcome(
                    head.at_ms,
                    &t.prefixes,
                    applies,
                    matches!(t.cause, wire::Cause::Verdict { .. })
                )
            )
        }
        // The answer that let a guarded withdrawal go: its outcome, timed from the answer
        // (not from the poll before the hold); a level a reload changed: its outcome.
        Event::FleetGuard(_) | Event::Level(_)
            if applies.iter().any(|r| matches!(r.event, Event::Apply(_))) =>
        {
            let mut prefixes: Vec<wire::PrefixRef> = Vec::new();
            for record in applies {
                if let Event::Apply(a) = &record.event {
                    if !prefixes.contains(&a.prefix) {
                        prefixes.push(a.prefix.clone());
                    }
                }
            }
            format!(
                "{}{}",
                event_text(&head.event),
                routing_outcome(head.at_ms, &prefixes, applies, false)
            )
        }
        Event::Reconciled(r) => reconciled_text(r, applies),
        Event::Drift(d) if !applies.is_empty() => format!(
            "{}{}",
            event_text(&head.event),
            routing_outcome(head.at_ms, std::slice::from_ref(&d.prefix), applies, false)
        ),
        Event::Reloaded(_) if !applies.is_empty() => {
            let outcomes: Vec<String> = applies
                .iter()
                .filter_map(|record| match &record.event {
                    Event::Apply(a) => Some(format!(
                        "{} {}: {}",
                        if a.change == wire::Change::Announce {
                            "announce"
                        } else {
                            "withdraw"
                        },
                        prefix_text(&a.prefix),
                        outcome_text(&a.outcome, &backend_label(&a.prefix))
                    )),
                    _ => None,
                })
                .collect();
            let daemon = backends_label(applies.iter().filter_map(|r| match &r.event {
                Event::Apply(a) => Some(&a.prefix),
                _ => None,
            }));
            format!(
                "{}; {daemon}: {}",
                event_text(&head.event),
                outcomes.join("; ")
            )
        }
        event => event_text(event),
    }
}

/// One human line for one record: time, service (`-` for the daemon), what happened.
pub fn render_text(record: &Record) -> String {
    format!(
        "{} {} {}",
        format_time(record.at_ms),
        record.event.service().unwrap_or("-"),
        event_text(&record.event)
    )
}

/// Where a prefix is, in words, for a move (`FRR vrf 123`), as its kind writes it: with its
/// instance when `others` has a place that differs only in the instance (or when its kind
/// always names it).
fn place_of(p: &wire::PrefixRef, others: &[&wire::PrefixRef]) -> String {
    let instance_differs = others
        .iter()
        .any(|o| o.backend == p.backend && o.vrf == p.vrf && o.instance != p.instance);
    words(&p.backend).place_of(
        &backend_label(p),
        p.vrf.as_deref(),
        &p.instance,
        instance_differs,
    )
}

/// What changed between two journaled parameter sets of a service, in words (`rise 1 -> 2`,
/// `check web: interval 2s -> 1s`, `check deep added`, `prefix ... removed`).
pub fn params_changes(old: &wire::ServiceParams, new: &wire::ServiceParams) -> Vec<String> {
    let mut out = Vec::new();
    let require = |n: u32| {
        if n == 0 {
            "all".to_owned()
        } else {
            n.to_string()
        }
    };
    for (what, a, b) in [
        ("rise", old.rise.to_string(), new.rise.to_string()),
        ("fall", old.fall.to_string(), new.fall.to_string()),
        ("require", require(old.require), require(new.require)),
    ] {
        if a != b {
            out.push(format!("{what} {a} -> {b}"));
        }
    }
    let removed: Vec<&wire::PrefixRef> = old
        .prefixes
        .iter()
        .filter(|p| !new.prefixes.contains(p))
        .collect();
    let added: Vec<&wire::PrefixRef> = new
        .prefixes
        .iter()
        .filter(|p| !old.prefixes.contains(p))
        .collect();
    // A prefix removed and added that would read the same (its routing daemon's instance
    // changed: another BIRD socket, another vtysh) is named with the instance.
    let named = |p: &wire::PrefixRef, others: &[&wire::PrefixRef]| {
        if others.iter().any(|o| prefix_text(o) == prefix_text(p)) {
            prefix_text_with_instance(p)
        } else {
            prefix_text(p)
        }
    };
    for p in &removed {
        out.push(format!("prefix {} removed", named(p, &added)));
    }
    for p in &added {
        out.push(format!("prefix {} added", named(p, &removed)));
    }
    // The same network leaving one place for another is a withdrawal there and an
    // announcement here: BGP peers see it go and come back (or stay away, if the new place
    // does not take it).
    for p in &removed {
        if let Some(to) = added.iter().find(|a| a.prefix == p.prefix) {
            out.push(format!(
                "{} moves from {} to {}: withdrawn from the old place now and announced at the \
                 new one if the service is healthy, so BGP peers see it withdrawn and announced \
                 again (a flap)",
                p.prefix,
                place_of(p, &added),
                place_of(to, &removed)
            ));
        }
    }
    let same = |a: &wire::CheckParams, b: &wire::CheckParams| {
        a.name == b.name && a.kind == b.kind && a.identity == b.identity
    };
    for c in &old.checks {
        if !new.checks.iter().any(|n| same(c, n)) {
            out.push(format!("check {} removed", c.name));
        }
    }
    let secs = |ms: u64| format!("{}s", ms as f64 / 1000.0);
    for c in &new.checks {
        let Some(o) = old.checks.iter().find(|o| same(o, c)) else {
            out.push(format!("check {} added", c.name));
            continue;
        };
        let mut what = Vec::new();
        for (key, a, b) in [
            ("interval", o.interval_ms, c.interval_ms),
            ("timeout", o.timeout_ms, c.timeout_ms),
            (
                "pending_timeout",
                o.pending_timeout_ms,
                c.pending_timeout_ms,
            ),
        ] {
            if a != b {
                what.push(format!("{key} {} -> {}", secs(a), secs(b)));
            }
        }
        if o.shadow != c.shadow {
            what.push(
                if c.shadow {
                    "now a shadow check"
                } else {
                    "no longer a shadow check"
                }
                .into(),
            );
        }
        if !what.is_empty() {
            out.push(format!("check {}: {}", c.name, what.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: &str, observation: wire::Observation) -> wire::CheckResult {
        wire::CheckResult {
            check: check.into(),
            observation,
        }
    }

    #[test]
    fn drift_with_the_prefix_present_and_wanted_is_an_announcement_with_other_attributes() {
        let drift = |present: bool, wanted: bool| wire::Drift {
            service: "dns".into(),
            prefix: wire::PrefixRef {
                backend: "frr".into(),
                instance: "/usr/bin/vtysh".into(),
                vrf: None,
                prefix: "203.0.113.53/32".into(),
            },
            present,
            wanted,
        };
        assert_eq!(
            drift_text(&drift(true, true)),
            "drift: 203.0.113.53/32 was announced with other attributes in FRR; repairing"
        );
        assert_eq!(
            drift_text(&drift(false, true)),
            "drift: 203.0.113.53/32 was absent in FRR, announcement wanted; repairing"
        );
    }

    #[test]
    fn a_mixed_decision_names_the_daemon_of_each_outcome() {
        let prefix = |backend: &str, vrf: Option<&str>, prefix: &str| wire::PrefixRef {
            backend: backend.into(),
            instance: match backend {
                "bird" => crate::routing::bird::DEFAULT_SOCKET.into(),
                _ => "/usr/bin/vtysh".into(),
            },
            vrf: vrf.map(str::to_owned),
            prefix: prefix.into(),
        };
        let frr = prefix("frr", None, "203.0.113.53/32");
        let bird = prefix("bird", Some("anycastd4"), "198.51.100.53/32");
        let apply = |p: &wire::PrefixRef, outcome: wire::Outcome, at_ms: i64| Record {
            version: 3,
            seq: 0,
            at_ms,
            event: Event::Apply(wire::Apply {
                service: "dns".into(),
                prefix: p.clone(),
                change: wire::Change::Withdraw,
                outcome,
                decision_seq: 1,
            }),
        };
        let applied = apply(&frr, wire::Outcome::Applied, 1_115);
        let failed = apply(
            &bird,
            wire::Outcome::Failed("8002 bird.conf:25:1".into()),
            1_020,
        );
        let text = routing_outcome(
            1_000,
            &[frr.clone(), bird.clone()],
            &[&applied, &failed],
            true,
        );
        assert_eq!(
            text,
            "; FRR applied 115 ms after the deciding poll; BIRD FAILED for 198.51.100.53/32 \
             (BIRD protocol anycastd4): 8002 bird.conf:25:1 (retrying)"
        );
        let both = apply(&bird, wire::Outcome::Applied, 1_100);
        assert_eq!(
            routing_outcome(1_000, &[frr, bird], &[&applied, &failed, &both], false),
            "; FRR applied in 115 ms; BIRD applied in 100 ms, 1 failed attempt(s) before (the \
             last: 8002 bird.conf:25:1)"
        );
    }

    #[test]
    fn an_already_so_after_failed_attempts_says_how_long_and_why() {
        // Given a drain's withdrawal that BIRD, not running, could not take twice, and that
        // was found withdrawn once BIRD answered again 5 s later,
        let bird = wire::PrefixRef {
            backend: "bird".into(),
            instance: crate::routing::bird::DEFAULT_SOCKET.into(),
            vrf: Some("anycastd4".into()),
            prefix: "198.51.100.53/32".into(),
        };
        let apply = |outcome: wire::Outcome, at_ms: i64| Record {
            version: 3,
            seq: 0,
            at_ms,
            event: Event::Apply(wire::Apply {
                service: "dns".into(),
                prefix: bird.clone(),
                change: wire::Change::Withdraw,
                outcome,
                decision_seq: 1,
            }),
        };
        let down = "cannot read BIRD: BIRD is not running (control socket /run/bird/bird.ctl: \
                    no such file); not applied";
        let first = apply(wire::Outcome::Failed(down.into()), 1_010);
        let second = apply(wire::Outcome::Failed(down.into()), 3_010);
        let already = apply(wire::Outcome::AlreadySo, 6_000);
        // when its outcome is told, then the account says it failed first, how often, for
        // how long and why, not a bare "already so";
        let prefixes = std::slice::from_ref(&bird);
        assert_eq!(
            routing_outcome(1_000, prefixes, &[&first, &second, &already], false),
            format!("; BIRD already so in 5000 ms, 2 failed attempt(s) before (the last: {down})")
        );
        assert_eq!(
            routing_outcome(1_000, prefixes, &[&first, &second, &already], true),
            format!(
                "; BIRD already so 5000 ms after the deciding poll, 2 failed attempt(s) before \
                 (the last: {down})"
            )
        );
        // and one found so at once still reads as before.
        assert_eq!(
            routing_outcome(1_000, prefixes, &[&already], false),
            "; BIRD already so"
        );
    }

    #[test]
    fn an_outcome_names_its_deciding_record_or_none() {
        let apply = |decision_seq| {
            Event::Apply(wire::Apply {
                service: "dns".into(),
                prefix: wire::PrefixRef::frr("/usr/bin/vtysh", None, "203.0.113.53/32"),
                change: wire::Change::Withdraw,
                outcome: wire::Outcome::Applied,
                decision_seq,
            })
        };
        assert_eq!(
            event_text(&apply(12)),
            "FRR withdraw 203.0.113.53/32: applied (decision 12)"
        );
        assert_eq!(
            event_text(&apply(0)),
            "FRR withdraw 203.0.113.53/32: applied (no deciding record)"
        );
    }

    fn bird(socket: &str, prefix: &str) -> wire::PrefixRef {
        wire::PrefixRef {
            backend: "bird".into(),
            instance: socket.into(),
            vrf: Some("anycastd4".into()),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn a_bird_prefix_names_its_socket_when_it_is_not_the_default() {
        assert_eq!(
            prefix_text(&bird("/run/bird/bird.ctl", "203.0.113.1/32")),
            "203.0.113.1/32 (BIRD protocol anycastd4)"
        );
        assert_eq!(
            prefix_text(&bird("/run/bird/bird.cttl", "203.0.113.1/32")),
            "203.0.113.1/32 (BIRD protocol anycastd4 at /run/bird/bird.cttl)"
        );
        assert_eq!(
            prefix_with_backend(&bird("/run/bird/b.ctl", "203.0.113.1/32")),
            "203.0.113.1/32 (BIRD at /run/bird/b.ctl, protocol anycastd4)"
        );
    }

    #[test]
    fn a_reload_to_another_socket_names_both_and_says_the_peer_sees_a_flap() {
        let params = |prefixes| wire::ServiceParams {
            name: "a".into(),
            rise: 1,
            fall: 1,
            checks: vec![],
            prefixes,
            require: 0,
        };
        let typo = params(vec![bird("/run/bird/bird.cttl", "203.0.113.1/32")]);
        let fixed = params(vec![bird("/run/bird/bird.ctl", "203.0.113.1/32")]);
        assert_eq!(
            params_changes(&typo, &fixed),
            [
                "prefix 203.0.113.1/32 (BIRD protocol anycastd4 at /run/bird/bird.cttl) removed",
                "prefix 203.0.113.1/32 (BIRD protocol anycastd4) added",
                "203.0.113.1/32 moves from BIRD protocol anycastd4 at /run/bird/bird.cttl to \
                 BIRD protocol anycastd4 at /run/bird/bird.ctl: withdrawn from the old place now \
                 and announced at the new one if the service is healthy, so BGP peers see it \
                 withdrawn and announced again (a flap)",
            ]
        );
        // Another vtysh: FRR's words alone would read the same.
        let frr = |vtysh: &str| params(vec![wire::PrefixRef::frr(vtysh, None, "192.0.2.1/32")]);
        let changes = params_changes(&frr("/usr/bin/vtysh"), &frr("/usr/local/bin/vtysh"));
        assert_eq!(
            changes[..2],
            [
                "prefix 192.0.2.1/32 through /usr/bin/vtysh removed",
                "prefix 192.0.2.1/32 through /usr/local/bin/vtysh added",
            ]
        );
        assert!(
            changes[2].starts_with(
                "192.0.2.1/32 moves from FRR through /usr/bin/vtysh to FRR through /usr/local/bin/vtysh:"
            ),
            "{changes:?}"
        );
    }

    #[test]
    fn an_orphan_names_its_socket_as_the_configuration_may_have_it_at_another() {
        let record = wire::Reconciled {
            rebooted: false,
            found: vec![],
            items: vec![wire::ReconcileItem {
                service: "a".into(),
                prefix: bird("/run/bird/bird.ctl", "203.0.113.1/32"),
                decision: wire::ReconcileDecision::Orphan,
            }],
            unreadable: vec![],
        };
        assert_eq!(
            reconciled_text(&record, &[]),
            "start-up reconciliation: withdraw 203.0.113.1/32 (BIRD protocol anycastd4 at \
             /run/bird/bird.ctl) of a (orphan: no longer configured there)"
        );
    }

    #[test]
    fn a_reconfiguration_says_what_changed() {
        let check = |name: &str, interval_ms: u64, shadow: bool| wire::CheckParams {
            kind: "exec".into(),
            identity: "/bin/true".into(),
            name: name.into(),
            interval_ms,
            timeout_ms: 1000,
            pending_timeout_ms: 10_000,
            max_age_ms: None,
            shadow,
        };
        let old = wire::ServiceParams {
            name: "web".into(),
            rise: 1,
            fall: 1,
            checks: vec![check("a", 1000, false), check("gone", 1000, false)],
            prefixes: vec![wire::PrefixRef::frr("/usr/bin/vtysh", None, "192.0.2.1/32")],
            require: 0,
        };
        let new = wire::ServiceParams {
            rise: 2,
            checks: vec![check("a", 500, true), check("b", 1000, false)],
            prefixes: vec![wire::PrefixRef::frr("/usr/bin/vtysh", None, "192.0.2.2/32")],
            require: 1,
            ..old.clone()
        };
        assert_eq!(
            params_changes(&old, &new),
            [
                "rise 1 -> 2",
                "require all -> 1",
                "prefix 192.0.2.1/32 removed",
                "prefix 192.0.2.2/32 added",
                "check gone removed",
                "check a: interval 1s -> 0.5s, now a shadow check",
                "check b added",
            ]
        );
        assert!(params_changes(&old, &old).is_empty());
    }

    #[test]
    fn a_cause_names_the_checks_that_decided() {
        let fail = |r: &str| wire::Observation::Fail(r.into());
        let all = wire::Cause::Verdict {
            healthy: true,
            checks: vec![result("a", wire::Observation::Pass)],
        };
        assert_eq!(cause_text(&all), "all checks pass");
        // require = 2 of 3: healthy with a failing check, which is named.
        let some = wire::Cause::Verdict {
            healthy: true,
            checks: vec![
                result("a", wire::Observation::Pass),
                result("b", fail("timeout")),
                result("c", wire::Observation::Pass),
            ],
        };
        assert_eq!(
            cause_text(&some),
            "2 of 3 checks pass; check b failed: timeout"
        );
        let none = wire::Cause::Verdict {
            healthy: false,
            checks: vec![result("a", fail("x")), result("b", fail("y"))],
        };
        assert_eq!(cause_text(&none), "check a failed: x; check b failed: y");
    }
}
