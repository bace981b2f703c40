//! Start-up reconciliation (docs/ARCHITECTURE.md, "Start-up reconciliation"): from the
//! journal's last state of each service, the boot id, and what each backend has installed
//! (its configured prefixes), decide
//! each service's starting state and what to withdraw or keep, before the first check runs.
//!
//! 1. in the daemon, journal says announced, still configured -> keep; the service is restored
//!    `Healthy` and stays so while its checks are pending (no flap on a crash-restart); an
//!    unhealthy service is "announced" when it de-prefers or the fleet guard held its
//!    withdrawal, and is restored `Unhealthy`;
//! 2. in the daemon, journal says announced, no longer configured -> withdraw (orphan);
//! 3. journal says announced, the daemon lacks it -> the service starts over in `Starting`;
//! 4. journal says withdrawn or draining, the daemon has it -> withdraw;
//! 5. in the daemon, configured, unknown to the journal -> adopt it as in rule 1;
//! 6. after a reboot (boot id changed) rules 1 and 5 do not apply: every configured prefix
//!    found in the daemon is withdrawn and services start in `Starting`.
//!
//! Prefixes in the daemon that are neither configured nor in the journal are never touched. A
//! service restored `Healthy` whose journal-announced prefixes are only partly in the daemon gets the
//! missing ones re-announced (its desired state is "announced"). This module is pure and
//! backend-neutral: the caller reads the journal and the backends and carries out the plan.

use super::{BackendError, BackendId, Installed, Route, Snapshot};
use anycastd_fsm::{DrainCause, State};
use anycastd_journal::wire::{self, ReconcileDecision, ReconcileItem};
use anycastd_journal::LastState;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What to do at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Starting state of each configured service (absent = `Starting`).
    pub states: BTreeMap<String, State>,
    /// The wire cause for each service whose starting state was decided here.
    pub causes: BTreeMap<String, wire::Cause>,
    /// Prefixes to withdraw now, with their owning service.
    pub withdraw: Vec<(Route, String)>,
    /// The journal record.
    pub record: wire::Reconciled,
    /// Operator drains kept in their grace, with its end (ms since the epoch).
    pub graces: BTreeMap<String, i64>,
}

/// What each backend has installed, or why it could not be read.
pub type View = HashMap<BackendId, Result<Snapshot, BackendError>>;

fn present(view: &View, route: &Route) -> bool {
    match view.get(&route.backend) {
        Some(Ok(installed)) => installed.contains(&route.place, &route.prefix),
        _ => false,
    }
}

fn readable(view: &View, backend: &BackendId) -> bool {
    matches!(view.get(backend), Some(Ok(_)))
}

/// A configured service as the reconciliation sees it: its name and prefixes.
pub type ServiceRoutes<'a> = (&'a str, &'a [Route]);

/// What graded announcements keep announced across a restart.
#[derive(Debug)]
pub struct Kept<'a> {
    /// The services whose unhealthy state is announced (`on_unhealthy = "deprefer"`): for them
    /// an unhealthy last state is "announced" as a healthy one is, and is restored as it was.
    pub deprefer: &'a [&'a str],
    /// The operator drains in a grace that has not ended (its end, ms since the epoch): their
    /// prefixes are kept announced until then, not withdrawn at once.
    pub graces: &'a BTreeMap<&'a str, i64>,
    /// The guarded services whose withdrawal by health the fleet guard held when the journal
    /// ends: their unhealthy state was announced, so it is kept and restored as it was (the
    /// driver asks the guard again), never withdrawn because of the restart.
    pub held: &'a [&'a str],
}

/// Decide the plan. `last` is the journal's last state per service; `kept` what graded
/// announcements keep announced. One pass over the
/// services applying the rules in the order of the module doc, then one over the journal for
/// rule 2; kept together so that the rules read as the table above.
pub fn plan(
    services: &[ServiceRoutes<'_>],
    last: &BTreeMap<String, LastState>,
    kept: &Kept<'_>,
    rebooted: bool,
    view: &View,
) -> Plan {
    let mut plan = Plan::default();
    plan.record.rebooted = rebooted;
    for (backend, installed) in view {
        if let Err(e) = installed {
            plan.record
                .unreadable
                .push((backend.to_string(), e.to_string()));
        }
    }
    plan.record.unreadable.sort();
    let mut configured: BTreeSet<&Route> = BTreeSet::new();
    let mut found: BTreeSet<wire::PrefixRef> = BTreeSet::new();
    let item = |plan: &mut Plan, service: &str, r: wire::PrefixRef, d: ReconcileDecision| {
        plan.record.items.push(ReconcileItem {
            service: service.to_owned(),
            prefix: r,
            decision: d,
        });
    };

    for &(name, routes) in services {
        let last_state = last.get(name);
        // The state the service was announced in (healthy; unhealthy under deprefer).
        let announced_in = |state: &wire::State| {
            *state == wire::State::Healthy
                || (*state == wire::State::Unhealthy
                    && (kept.deprefer.contains(&name) || kept.held.contains(&name)))
        };
        let journal_announced = |route: &Route| {
            last_state.is_some_and(|l| {
                announced_in(&l.state) && l.prefixes.contains(&route.journal_ref())
            })
        };
        let mut installed = Vec::new();
        let mut announced_missing = Vec::new();
        for p in routes {
            configured.insert(p);
            if present(view, p) {
                found.insert(p.journal_ref());
                installed.push(p);
            } else if journal_announced(p) && readable(view, &p.backend) {
                announced_missing.push(p);
            }
        }
        let operator_drain = match last_state.map(|l| &l.state) {
            Some(wire::State::Draining(cause @ wire::DrainCause::Operator { .. })) => {
                Some(DrainCause::from(cause))
            }
            _ => None,
        };
        let withdraw_all = |plan: &mut Plan, decision: ReconcileDecision| {
            for p in &installed {
                plan.withdraw.push(((*p).clone(), name.to_owned()));
                plan.record.items.push(ReconcileItem {
                    service: name.to_owned(),
                    prefix: p.journal_ref(),
                    decision: decision.clone(),
                });
            }
        };
        if rebooted {
            // Rule 6: the daemon may have loaded a saved copy; nothing is trusted.
            withdraw_all(&mut plan, ReconcileDecision::Reboot);
            if last_state.is_some_and(|l| l.state != wire::State::Starting) {
                plan.states.insert(name.to_owned(), State::Starting);
                plan.causes.insert(name.to_owned(), wire::Cause::Restart);
            }
            continue;
        }
        if let Some(cause) = operator_drain {
            // An operator drain survives a restart: stay drained, withdraw what the daemon
            // has; in a grace that has not ended, keep it announced until the grace's end.
            match kept.graces.get(name) {
                Some(until) if !installed.is_empty() => {
                    for p in &installed {
                        item(&mut plan, name, p.journal_ref(), ReconcileDecision::Kept);
                    }
                    plan.graces.insert(name.to_owned(), *until);
                }
                _ => withdraw_all(&mut plan, ReconcileDecision::Withdrawn),
            }
            plan.states.insert(name.to_owned(), State::Draining(cause));
            continue;
        }
        let was_announced = last_state.is_some_and(|l| announced_in(&l.state));
        match (last_state, installed.is_empty()) {
            // Rule 1 (and rule 3 for the missing ones, re-announced as the service is healthy).
            (Some(_), false) if was_announced => {
                for p in &installed {
                    let r = p.journal_ref();
                    let decision = if journal_announced(p) {
                        ReconcileDecision::Kept
                    } else {
                        ReconcileDecision::Adopted
                    };
                    item(&mut plan, name, r, decision);
                }
                for p in &announced_missing {
                    let r = p.journal_ref();
                    item(&mut plan, name, r, ReconcileDecision::Missing);
                }
                // Restored as it was: healthy, or unhealthy and de-preferred.
                let restored = match last_state.map(|l| &l.state) {
                    Some(wire::State::Unhealthy) => State::Unhealthy,
                    _ => State::Healthy,
                };
                plan.states.insert(name.to_owned(), restored);
                plan.causes.insert(name.to_owned(), wire::Cause::Restored);
            }
            // Rule 3: the journal says announced but the daemon has none of it.
            (Some(_), true) if was_announced => {
                for p in &announced_missing {
                    let r = p.journal_ref();
                    item(&mut plan, name, r, ReconcileDecision::Missing);
                }
                plan.states.insert(name.to_owned(), State::Starting);
                plan.causes.insert(name.to_owned(), wire::Cause::Restart);
            }
            // Rule 4: withdrawn, unhealthy, starting or draining in the journal.
            (Some(l), _) => {
                withdraw_all(&mut plan, ReconcileDecision::Withdrawn);
                if l.state != wire::State::Starting {
                    plan.states.insert(name.to_owned(), State::Starting);
                    plan.causes.insert(name.to_owned(), wire::Cause::Restart);
                }
            }
            // Rule 5: the journal knows nothing; the daemon has some of it.
            (None, false) => {
                for p in &installed {
                    let r = p.journal_ref();
                    item(&mut plan, name, r, ReconcileDecision::Adopted);
                }
                plan.states.insert(name.to_owned(), State::Healthy);
                plan.causes.insert(name.to_owned(), wire::Cause::Adopted);
            }
            (None, true) => {}
        }
    }

    // Rule 2: journaled prefixes no service configures any more.
    for (service, l) in last {
        for r in &l.prefixes {
            let Some(route) = Route::of_journal_ref(r) else {
                continue;
            };
            if configured.contains(&route) {
                continue;
            }
            if present(view, &route) {
                found.insert(r.clone());
                plan.withdraw.push((route, service.clone()));
                item(&mut plan, service, r.clone(), ReconcileDecision::Orphan);
            }
        }
    }
    plan.record.found = found.into_iter().collect();
    plan
}

/// Every backend to read: the configured ones and those in the journal.
pub fn backends<'a>(
    configured: impl IntoIterator<Item = &'a BackendId>,
    last: &BTreeMap<String, LastState>,
) -> BTreeSet<BackendId> {
    let mut backends: BTreeSet<BackendId> = configured.into_iter().cloned().collect();
    for l in last.values() {
        for r in &l.prefixes {
            if let Some(route) = Route::of_journal_ref(r).filter(|r| !r.backend.instance.is_empty())
            {
                backends.insert(route.backend);
            }
        }
    }
    backends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Place;

    fn route(vrf: Option<&str>, prefix: &str) -> Route {
        Route {
            prefix: prefix.parse().unwrap(),
            place: vrf.into(),
            backend: BackendId::frr("/usr/bin/vtysh"),
        }
    }

    /// dns (203.0.113.53/32) and ntp (203.0.113.123/32 in VRF 123), both in one FRR.
    fn plan(last: &BTreeMap<String, LastState>, rebooted: bool, view: &View) -> Plan {
        let dns = [route(None, "203.0.113.53/32")];
        let ntp = [route(Some("123"), "203.0.113.123/32")];
        super::plan(
            &[("dns", &dns), ("ntp", &ntp)],
            last,
            &Kept {
                deprefer: &[],
                graces: &BTreeMap::new(),
                held: &[],
            },
            rebooted,
            view,
        )
    }

    fn frr(networks: &[(Option<&str>, &str)]) -> View {
        let mut installed = Snapshot::default();
        installed.tables.insert(Place::default(), BTreeSet::new());
        installed
            .tables
            .insert(Place::named("123"), BTreeSet::new());
        for (vrf, p) in networks {
            installed
                .tables
                .get_mut(&Place::from(*vrf))
                .unwrap()
                .insert(p.parse().unwrap());
        }
        HashMap::from([(BackendId::frr("/usr/bin/vtysh"), Ok(installed))])
    }

    type Entry<'a> = (&'a str, wire::State, &'a [(Option<&'a str>, &'a str)]);

    fn last(entries: &[Entry<'_>]) -> BTreeMap<String, LastState> {
        entries
            .iter()
            .map(|(service, state, prefixes)| {
                (
                    service.to_string(),
                    LastState {
                        seq: 1,
                        at_ms: 0,
                        state: state.clone(),
                        prefixes: prefixes
                            .iter()
                            .map(|(vrf, p)| {
                                wire::PrefixRef::frr("/usr/bin/vtysh", vrf.map(str::to_owned), p)
                            })
                            .collect(),
                    },
                )
            })
            .collect()
    }

    fn decisions(plan: &Plan) -> Vec<(String, String, ReconcileDecision)> {
        plan.record
            .items
            .iter()
            .map(|i| {
                (
                    i.service.clone(),
                    i.prefix.prefix.clone(),
                    i.decision.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn rule_1_a_crash_restart_of_an_unhealthy_deprefer_service_keeps_it_announced_unhealthy() {
        let last = last(&[
            ("dns", wire::State::Unhealthy, &[(None, "203.0.113.53/32")]),
            (
                "ntp",
                wire::State::Unhealthy,
                &[(Some("123"), "203.0.113.123/32")],
            ),
        ]);
        let dns = [route(None, "203.0.113.53/32")];
        let ntp = [route(Some("123"), "203.0.113.123/32")];
        // dns de-prefers, ntp withdraws: both found in FRR after a crash.
        let plan = super::plan(
            &[("dns", &dns), ("ntp", &ntp)],
            &last,
            &Kept {
                deprefer: &["dns"],
                graces: &BTreeMap::new(),
                held: &[],
            },
            false,
            &frr(&[(None, "203.0.113.53/32"), (Some("123"), "203.0.113.123/32")]),
        );
        assert_eq!(plan.states.get("dns"), Some(&State::Unhealthy));
        assert_eq!(plan.causes.get("dns"), Some(&wire::Cause::Restored));
        assert_eq!(
            decisions(&plan),
            [
                (
                    "dns".into(),
                    "203.0.113.53/32".into(),
                    ReconcileDecision::Kept
                ),
                (
                    "ntp".into(),
                    "203.0.113.123/32".into(),
                    ReconcileDecision::Withdrawn
                ),
            ]
        );
        assert_eq!(plan.withdraw.len(), 1, "only ntp's prefix is withdrawn");
    }

    #[test]
    fn rule_1_a_crash_restart_of_a_service_whose_withdrawal_the_fleet_guard_held_keeps_it_announced(
    ) {
        let last = last(&[
            ("dns", wire::State::Unhealthy, &[(None, "203.0.113.53/32")]),
            (
                "ntp",
                wire::State::Unhealthy,
                &[(Some("123"), "203.0.113.123/32")],
            ),
        ]);
        let dns = [route(None, "203.0.113.53/32")];
        let ntp = [route(Some("123"), "203.0.113.123/32")];
        // dns's withdrawal was held by the fleet guard; ntp's was made (or never asked).
        let plan = super::plan(
            &[("dns", &dns), ("ntp", &ntp)],
            &last,
            &Kept {
                deprefer: &[],
                graces: &BTreeMap::new(),
                held: &["dns"],
            },
            false,
            &frr(&[(None, "203.0.113.53/32"), (Some("123"), "203.0.113.123/32")]),
        );
        assert_eq!(plan.states.get("dns"), Some(&State::Unhealthy));
        assert_eq!(plan.causes.get("dns"), Some(&wire::Cause::Restored));
        assert_eq!(
            decisions(&plan),
            [
                (
                    "dns".into(),
                    "203.0.113.53/32".into(),
                    ReconcileDecision::Kept
                ),
                (
                    "ntp".into(),
                    "203.0.113.123/32".into(),
                    ReconcileDecision::Withdrawn
                ),
            ]
        );
        assert_eq!(plan.withdraw.len(), 1, "only ntp's prefix is withdrawn");
    }

    #[test]
    fn rule_1_a_crash_restart_of_a_healthy_service_keeps_it_announced() {
        let last = last(&[("dns", wire::State::Healthy, &[(None, "203.0.113.53/32")])]);
        let plan = plan(&last, false, &frr(&[(None, "203.0.113.53/32")]));
        assert_eq!(plan.states.get("dns"), Some(&State::Healthy));
        assert!(plan.withdraw.is_empty());
        assert_eq!(
            decisions(&plan),
            [(
                "dns".into(),
                "203.0.113.53/32".into(),
                ReconcileDecision::Kept
            )]
        );
    }

    #[test]
    fn rule_2_a_journaled_prefix_no_longer_configured_is_withdrawn_as_an_orphan() {
        let last = last(&[("web", wire::State::Healthy, &[(None, "198.51.100.80/32")])]);
        let plan = plan(&last, false, &frr(&[(None, "198.51.100.80/32")]));
        assert_eq!(plan.withdraw.len(), 1);
        assert_eq!(plan.withdraw[0].1, "web");
        assert_eq!(
            decisions(&plan),
            [(
                "web".into(),
                "198.51.100.80/32".into(),
                ReconcileDecision::Orphan
            )]
        );
    }

    #[test]
    fn rule_3_announced_in_the_journal_but_missing_from_frr_starts_over() {
        let last = last(&[("dns", wire::State::Healthy, &[(None, "203.0.113.53/32")])]);
        let plan = plan(&last, false, &frr(&[]));
        assert_eq!(plan.states.get("dns"), Some(&State::Starting));
        assert_eq!(
            decisions(&plan),
            [(
                "dns".into(),
                "203.0.113.53/32".into(),
                ReconcileDecision::Missing
            )]
        );
    }

    #[test]
    fn rule_4_withdrawn_in_the_journal_but_in_frr_is_withdrawn() {
        let last = last(&[
            ("dns", wire::State::Unhealthy, &[(None, "203.0.113.53/32")]),
            (
                "ntp",
                wire::State::Draining(wire::DrainCause::Shutdown),
                &[(Some("123"), "203.0.113.123/32")],
            ),
        ]);
        let plan = plan(
            &last,
            false,
            &frr(&[(None, "203.0.113.53/32"), (Some("123"), "203.0.113.123/32")]),
        );
        assert_eq!(plan.withdraw.len(), 2);
        assert_eq!(
            plan.states.get("ntp"),
            Some(&State::Starting),
            "a shutdown drain does not survive"
        );
    }

    #[test]
    fn rule_5_configured_prefixes_unknown_to_the_journal_are_adopted() {
        let plan = plan(
            &BTreeMap::new(),
            false,
            &frr(&[(Some("123"), "203.0.113.123/32")]),
        );
        assert_eq!(plan.states.get("ntp"), Some(&State::Healthy));
        assert_eq!(plan.causes.get("ntp"), Some(&wire::Cause::Adopted));
        assert_eq!(plan.states.get("dns"), None, "dns starts normally");
        assert!(plan.withdraw.is_empty());
    }

    #[test]
    fn rule_6_after_a_reboot_nothing_is_restored_or_adopted() {
        let last = last(&[("dns", wire::State::Healthy, &[(None, "203.0.113.53/32")])]);
        let plan = plan(
            &last,
            true,
            &frr(&[(None, "203.0.113.53/32"), (Some("123"), "203.0.113.123/32")]),
        );
        assert_eq!(plan.states.get("dns"), Some(&State::Starting));
        assert_eq!(plan.withdraw.len(), 2);
        assert!(plan
            .record
            .items
            .iter()
            .all(|i| i.decision == ReconcileDecision::Reboot));
    }

    #[test]
    fn prefixes_neither_configured_nor_journaled_are_never_touched() {
        let plan = plan(&BTreeMap::new(), false, &frr(&[(None, "192.0.2.0/24")]));
        assert!(
            plan.withdraw.is_empty()
                && plan.record.items.is_empty()
                && plan.record.found.is_empty()
        );
    }

    #[test]
    fn an_unreadable_frr_decides_nothing_for_its_prefixes() {
        let last = last(&[("dns", wire::State::Healthy, &[(None, "203.0.113.53/32")])]);
        let view: View =
            HashMap::from([(BackendId::frr("/usr/bin/vtysh"), Err("unreachable".into()))]);
        let plan = plan(&last, false, &view);
        assert!(plan.withdraw.is_empty());
        assert_eq!(
            plan.record.unreadable,
            [("/usr/bin/vtysh".into(), "unreachable".into())]
        );
    }
}
