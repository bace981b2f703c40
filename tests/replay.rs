//! Postmortem replay, against oracles that do not come from replay itself:
//! - in process: two live runs of the daemon's own per-service core on the same script of
//!   check results, drains, reloads, stops and crashes, with different settings; replaying
//!   the first run's journal with the second's settings must give the second run's
//!   transitions at the same times, and its figures must equal those of the second run's own
//!   journal (random scripts, with damping);
//! - the reproduction (three failures a second apart, then passes) against figures
//!   computed by hand from what was served;
//! - the real daemon, twice, on one scripted sequence of results: rise 1/fall 1 and
//!   rise 2/fall 3 (tests/replay_oracle.rs);
//! - a format-1 journal still replays, saying where its times are approximate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::rng::Rng;

use anycastd::audit::replay::{replay, Report, WhatIf};
use anycastd::audit::text::state_text;
use anycastd_fsm::{self as fsm, Observation};
use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Journal, Options, Record};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};
use support::live::{Input, Live};

const T0: i64 = 1_795_500_000_000;

fn check(name: &str, interval_ms: u64) -> wire::CheckParams {
    wire::CheckParams {
        shadow: false,
        kind: "cabourotte".into(),
        identity: "http://127.0.0.1:9013".into(),
        name: name.into(),
        interval_ms,
        timeout_ms: interval_ms.min(5_000),
        pending_timeout_ms: (3 * interval_ms).max(10_000),
        max_age_ms: None,
    }
}

fn service(rise: u32, fall: u32, checks: Vec<wire::CheckParams>) -> wire::ServiceParams {
    wire::ServiceParams {
        require: 0,
        name: "dns".into(),
        rise,
        fall,
        checks,
        prefixes: vec![wire::PrefixRef::frr(
            "/usr/bin/vtysh",
            None,
            "203.0.113.53/32",
        )],
    }
}

fn damping(rng: &mut Rng) -> fsm::Damping {
    fsm::Damping {
        penalty: 1000,
        suppress: 1500 + rng.below(1000) as u32,
        reuse: 500 + rng.below(500) as u32,
        half_life: Duration::from_millis(5_000 + rng.below(20_000)),
        max_suppress: Duration::from_millis(30_000 + rng.below(60_000)),
    }
}

/// A random script: checks polled on their grids (due times read with ±1 ms, a poll now and
/// then missed), results that flip, pending results, drains with and without expiry,
/// undrains, reloads (rise/fall, intervals, checks added and removed, damping), clean stops,
/// handovers and crashes followed by starts.
fn script(rng: &mut Rng, first: &wire::ServiceParams, with_damping: bool) -> Vec<(i64, Input)> {
    let mut script = vec![(T0, Input::Start)];
    let mut params = first.clone();
    let mut latest: std::collections::HashMap<String, Observation> = Default::default();
    let mut next_due: std::collections::HashMap<String, i64> = params
        .checks
        .iter()
        .map(|c| (c.name.clone(), T0 + 10 + rng.below(c.interval_ms) as i64))
        .collect();
    let mut running = true;
    let mut at = T0;
    let end = T0 + 600_000 + rng.below(1_200_000) as i64;
    while at < end {
        if !running {
            at += 2_000 + rng.below(20_000) as i64;
            script.push((at, Input::Start));
            // The reconciliation (5 ms after the start) comes before anything else.
            at += 10;
            running = true;
            for c in &params.checks {
                next_due.insert(c.name.clone(), at + 10 + rng.below(50) as i64);
            }
            continue;
        }
        let (name, due) = next_due
            .iter()
            .min_by_key(|(n, d)| (**d, (*n).clone()))
            .map(|(n, d)| (n.clone(), *d))
            .unwrap_or(("".into(), at + 1_000));
        // Something else happens before the next result, now and then.
        if rng.chance(3) {
            let when = at + 1 + rng.below((due - at).max(1) as u64) as i64;
            at = when;
            let event = match rng.below(9) {
                0 | 1 => Input::Drain {
                    expires_at: rng
                        .chance(50)
                        .then(|| when + 1_000 + rng.below(30_000) as i64),
                },
                2 | 3 => Input::Undrain,
                4 | 5 => {
                    let mut new = params.clone();
                    new.rise = 1 + rng.below(3) as u32;
                    new.fall = 1 + rng.below(3) as u32;
                    match rng.below(4) {
                        0 if new.checks.len() < 3 => {
                            let name = format!("c{}", rng.below(6));
                            if !new.checks.iter().any(|c| c.name == name) {
                                new.checks.push(check(&name, 1_000));
                                next_due.insert(name, when + 1_000);
                            }
                        }
                        1 if new.checks.len() > 1 => {
                            let gone = new
                                .checks
                                .remove(rng.below(new.checks.len() as u64) as usize);
                            next_due.remove(&gone.name);
                        }
                        2 => {
                            let i = rng.below(new.checks.len() as u64) as usize;
                            let interval = [500, 1_000, 1_500, 2_000][rng.below(4) as usize];
                            let name = new.checks[i].name.clone();
                            new.checks[i] = check(&name, interval);
                            next_due.insert(name, when + interval as i64);
                        }
                        _ => {}
                    }
                    params = new.clone();
                    let damping = (with_damping && rng.chance(80)).then(|| damping(rng));
                    Input::Reload {
                        params: new,
                        damping,
                    }
                }
                6 => {
                    running = false;
                    Input::Stop
                }
                7 => {
                    running = false;
                    Input::Handover
                }
                _ => {
                    running = false;
                    Input::Crash
                }
            };
            script.push((when, event));
            continue;
        }
        at = due;
        let interval = params
            .checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.interval_ms as i64)
            .unwrap_or(1_000);
        next_due.insert(name.clone(), due + interval);
        if rng.chance(3) {
            continue; // a missed poll
        }
        let previous = latest.get(&name).cloned().unwrap_or(Observation::Pass);
        let observation = if rng.chance(12) {
            match rng.below(10) {
                0 => Observation::Pending,
                1..=5 => Observation::Fail("resolver timeout".into()),
                _ => Observation::Pass,
            }
        } else {
            previous
        };
        latest.insert(name.clone(), observation.clone());
        script.push((
            due,
            Input::Result {
                check: name,
                observation,
                jitter: rng.below(3) as i64 - 1,
            },
        ));
    }
    if running {
        script.push((at.max(end) + 1, Input::Stop));
    }
    script
}

/// The fsm transitions of a run as (time, from, to, healthy streak, unhealthy streak).
fn lived(transitions: &[fsm::Transition]) -> Vec<(i64, String, String)> {
    transitions
        .iter()
        .map(|t| {
            (
                t.at.0,
                state_text(&(&t.from).into()),
                state_text(&(&t.to).into()),
            )
        })
        .collect()
}

fn replayed(run: &anycastd::audit::replay::Run) -> Vec<(i64, String, String)> {
    replayed_kinds(run, &["transition"])
}

fn replayed_kinds(
    run: &anycastd::audit::replay::Run,
    kinds: &[&str],
) -> Vec<(i64, String, String)> {
    run.timeline
        .iter()
        .filter(|s| kinds.contains(&s.kind.as_str()))
        .map(|s| (s.at_ms, s.from.clone(), s.to.clone()))
        .collect()
}

fn recorded_transitions(records: &[Record]) -> Vec<(i64, String, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Transition(t) => Some((r.at_ms, state_text(&t.from), state_text(&t.to))),
            _ => None,
        })
        .collect()
}

/// What the seeds of an oracle went through.
#[derive(Default, Debug)]
struct Covered {
    transitions: usize,
    suppressions: usize,
    crashes: usize,
    reloads: usize,
    drains: usize,
}

/// One random case of the oracle: the service, its recorded damping, a what-if and a script.
type Case = (
    wire::ServiceParams,
    Option<fsm::Damping>,
    WhatIf,
    Vec<(i64, Input)>,
);

fn case(seed: u64, with_damping: bool) -> Case {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let checks = (0..1 + rng.below(3))
        .map(|i| {
            check(
                &format!("c{i}"),
                [1_000, 1_500, 2_000][rng.below(3) as usize],
            )
        })
        .collect();
    let params = service(1 + rng.below(3) as u32, 1 + rng.below(3) as u32, checks);
    let recorded_damping = (with_damping && rng.chance(50)).then(|| damping(&mut rng));
    let what_if = WhatIf {
        with_shadow: Vec::new(),
        on_unhealthy: None,
        drain_grace_ms: None,
        rise: Some(1 + rng.below(4) as u32),
        fall: Some(1 + rng.below(4) as u32),
        damping: with_damping.then(|| (&damping(&mut rng)).into()),
    };
    let script = script(&mut rng, &params, with_damping);
    (params, recorded_damping, what_if, script)
}

/// One seed of the oracle: returns what it compared.
fn oracle(seed: u64, with_damping: bool, old_rule: bool) -> Covered {
    let (params, recorded_damping, what_if, script) = case(seed, with_damping);

    let mut first = Live::new(params.clone(), recorded_damping.clone());
    first.old_rule = old_rule;
    first.run(&script);
    let mut second = Live::what_if(
        params.clone(),
        recorded_damping,
        what_if.rise,
        what_if.fall,
        what_if
            .damping
            .as_ref()
            .map(|d| Some(fsm::Damping::from(d))),
    );
    second.forced_crashes = Some(first.crash_positions.clone());
    second.old_rule = old_rule;
    second.run(&script);

    let report = replay("dns", &first.records, None, None, None, &what_if);
    assert!(
        report.divergences.is_empty(),
        "seed {seed}: {:#?}",
        report.divergences
    );
    assert_eq!(report.verified, first.transitions.len(), "seed {seed}");
    let (got, expected) = (
        replayed_kinds(&report.recorded, &["transition", "restart"]),
        recorded_transitions(&first.records),
    );
    if got != expected {
        let i = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "seed {seed}: recorded timeline differs from the journal at {i}: {:?} vs {:?}",
            got.get(i..(i + 3).min(got.len())),
            expected.get(i..(i + 3).min(expected.len()))
        );
    }
    let what_if_run = report.what_if.as_ref().unwrap();
    // Both timelines chain: each state change starts where the one before it ended, across
    // restarts too (a run's start-up line is in the what-if as in the recorded timeline).
    for (name, run) in [("recorded", &report.recorded), ("what-if", what_if_run)] {
        let steps: Vec<&anycastd::audit::replay::Step> = run
            .timeline
            .iter()
            .filter(|s| s.kind == "transition" || s.kind == "restart")
            .collect();
        for pair in steps.windows(2) {
            assert_eq!(
                pair[1].from, pair[0].to,
                "seed {seed}: the {name} timeline does not chain at {}",
                pair[1].time
            );
        }
    }
    let expected = lived(&second.transitions);
    let got = replayed(what_if_run);
    if got != expected {
        let first_difference = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "seed {seed}: what-if differs from the live run from transition {first_difference}: replayed {:?}, lived {:?}",
            got.get(first_difference..(first_difference + 3).min(got.len())),
            expected.get(first_difference..(first_difference + 3).min(expected.len()))
        );
    }
    if first.crash_positions.is_empty() {
        // The second run's own journal gives the same figures as the what-if.
        let own = replay("dns", &second.records, None, None, None, &WhatIf::default());
        assert!(
            own.divergences.is_empty(),
            "seed {seed}: {:#?}",
            own.divergences
        );
        assert_eq!(own.from_ms, report.from_ms, "seed {seed}");
        assert_eq!(own.to_ms, report.to_ms, "seed {seed}");
        assert_eq!(own.recorded.summary, what_if_run.summary, "seed {seed}");
    }
    Covered {
        transitions: expected.len(),
        suppressions: what_if_run.summary.suppressions,
        crashes: first.crash_positions.len(),
        reloads: script
            .iter()
            .filter(|(_, i)| matches!(i, Input::Reload { .. }))
            .count(),
        drains: script
            .iter()
            .filter(|(_, i)| matches!(i, Input::Drain { .. }))
            .count(),
    }
}

fn covered(with_damping: bool, old_rule: bool) -> Covered {
    let mut all = Covered::default();
    for seed in 1..=200u64 {
        let c = oracle(seed, with_damping, old_rule);
        all.transitions += c.transitions;
        all.suppressions += c.suppressions;
        all.crashes += c.crashes;
        all.reloads += c.reloads;
        all.drains += c.drains;
    }
    all
}

#[test]
fn a_what_if_equals_a_live_run_with_those_settings_transition_for_transition_and_to_the_millisecond(
) {
    let c = covered(false, false);
    // The scripts do go through flaps, crashes, reloads and drains.
    assert!(
        c.transitions > 2_000 && c.crashes > 50 && c.reloads > 100 && c.drains > 100,
        "{c:?}"
    );
}

#[test]
fn a_damping_what_if_equals_a_live_run_with_that_damping() {
    let c = covered(true, false);
    assert!(c.transitions > 2_000 && c.suppressions > 40, "{c:?}");
}

#[test]
fn a_journal_from_before_the_verdict_rule_replays_by_its_own_rule() {
    // Daemons that journaled no verdict rule waited for every pending check: their runs
    // replay (and what-if) by that rule, without a divergence, whatever this build does.
    let c = covered(false, true);
    assert!(c.transitions > 2_000 && c.crashes > 50, "{c:?}");
}

/// The reproduction: results every second from 14:36:40.182 (interval 1 s), passing,
/// then failing at :44.182, :45.182 and :46.182, passing again from :47.182 on, until a stop
/// at :60.182.
fn three_failures(rise: u32, fall: u32) -> Live {
    let start = 1_795_487_800_182; // 2026-11-24T14:36:40.182Z
    let params = service(rise, fall, vec![check("dns", 1_000)]);
    let mut script = vec![(start - 10, Input::Start)];
    for i in 0..20 {
        let observation = if (4..7).contains(&i) {
            Observation::Fail("resolver down".into())
        } else {
            Observation::Pass
        };
        script.push((
            start + i * 1_000,
            Input::Result {
                check: "dns".into(),
                observation,
                jitter: 0,
            },
        ));
    }
    script.push((start + 20_000, Input::Stop));
    let mut live = Live::new(params, None);
    live.run(&script);
    live
}

#[test]
fn fall_3_withdraws_at_the_third_failure_and_rise_3_announces_at_the_third_pass() {
    let live = three_failures(1, 1);
    let start = 1_795_487_800_182;
    let at = |second: i64| start + second * 1_000;
    let report = replay(
        "dns",
        &live.records,
        None,
        None,
        None,
        &WhatIf {
            with_shadow: Vec::new(),
            on_unhealthy: None,
            drain_grace_ms: None,
            rise: None,
            fall: Some(3),
            damping: None,
        },
    );
    let what_if = report.what_if.as_ref().unwrap();
    assert_eq!(
        replayed(what_if),
        [
            (at(0), "starting".into(), "healthy".into()),
            (at(6), "healthy".into(), "unhealthy".into()),
            (at(7), "unhealthy".into(), "healthy".into()),
            (at(20), "healthy".into(), "draining (shutdown)".into()),
        ]
    );
    // By hand from what was served: measured from the daemon's start (start - 10) to the
    // stop; withdrawn from the third failure to the next pass: 1 s.
    let measured = at(20) - (start - 10);
    let s = &what_if.summary;
    assert_eq!(s.measured_ms, measured);
    assert_eq!(s.longest_outage_ms, 1_000);
    assert_eq!(s.outages, 1);
    assert_eq!(s.mean_time_to_repair_ms, Some(1_000));
    assert_eq!(s.announced_ms, at(20) - at(0) - 1_000);
    assert_eq!(s.starting_ms, at(0) - (start - 10));
    let r = &report.recorded.summary;
    assert_eq!(
        r.longest_outage_ms, 3_000,
        "recorded: withdrawn from :44 to :47"
    );
    assert_eq!(r.announced_ms, at(20) - at(0) - 3_000);

    let report = replay(
        "dns",
        &live.records,
        None,
        None,
        None,
        &WhatIf {
            with_shadow: Vec::new(),
            on_unhealthy: None,
            drain_grace_ms: None,
            rise: Some(3),
            fall: None,
            damping: None,
        },
    );
    let what_if = report.what_if.as_ref().unwrap();
    assert_eq!(
        replayed(what_if),
        [
            (at(2), "starting".into(), "healthy".into()),
            (at(4), "healthy".into(), "unhealthy".into()),
            (at(9), "unhealthy".into(), "healthy".into()),
            (at(20), "healthy".into(), "draining (shutdown)".into()),
        ],
        "announced at the third pass, after the start and after the failures"
    );
    assert_eq!(what_if.summary.longest_outage_ms, 5_000);
    assert_eq!(
        what_if.summary.announced_ms,
        (at(4) - at(2)) + (at(20) - at(9))
    );
    // The same what-if as a live run.
    let lived_rise_3 = three_failures(3, 1);
    assert_eq!(replayed(what_if), lived(&lived_rise_3.transitions));
}

#[test]
fn a_window_after_the_last_record_is_empty_and_never_panics() {
    let live = three_failures(1, 1);
    let last = live.records.last().unwrap().at_ms;
    for (since, until) in [
        (Some(last + 3_600_000), None),
        (Some(last + 1), Some(last + 2)),
        (Some(i64::MIN), Some(i64::MAX)),
        (Some(i64::MAX), None),
        (None, Some(i64::MIN)),
        (Some(0), Some(1)),
    ] {
        for now in [None, Some(last + 10), Some(i64::MAX), Some(i64::MIN)] {
            let report = replay(
                "dns",
                &live.records,
                since,
                until,
                now,
                &WhatIf {
                    with_shadow: Vec::new(),
                    on_unhealthy: None,
                    drain_grace_ms: None,
                    rise: Some(2),
                    fall: Some(3),
                    damping: Some(wire::DampingParams {
                        penalty: 1000,
                        suppress: 2000,
                        reuse: 750,
                        half_life_ms: 1,
                        max_suppress_ms: u64::MAX,
                    }),
                },
            );
            assert!(report.from_ms <= report.to_ms);
            let _ = anycastd::audit::replay::render_text(&report);
        }
    }
    let report = replay(
        "dns",
        &live.records,
        Some(last + 3_600_000),
        None,
        None,
        &WhatIf::default(),
    );
    assert!(report.recorded.timeline.is_empty());
    assert!(!report.notes.is_empty(), "says why the window is empty");
}

#[test]
fn a_gap_before_the_window_is_not_listed_and_one_inside_is() {
    let params = service(1, 1, vec![check("dns", 1_000)]);
    let result = |at: i64| {
        (
            at,
            Input::Result {
                check: "dns".into(),
                observation: Observation::Pass,
                jitter: 0,
            },
        )
    };
    let mut script = vec![(T0, Input::Start), result(T0 + 100)];
    script.push((T0 + 100, Input::Crash));
    script.push((T0 + 60_000, Input::Start));
    script.extend((1..20).map(|i| result(T0 + 60_000 + i * 1_000)));
    script.push((T0 + 90_000, Input::Stop));
    let mut live = Live::new(params, None);
    live.run(&script);
    let all = replay("dns", &live.records, None, None, None, &WhatIf::default());
    assert_eq!(all.gaps.len(), 1, "{:?}", all.gaps);
    assert!(all.divergences.is_empty());
    let after = replay(
        "dns",
        &live.records,
        Some(T0 + 70_000),
        None,
        None,
        &WhatIf::default(),
    );
    assert!(after.gaps.is_empty(), "{:?}", after.gaps);
    // The gap is not measured: 30 s of the second run, nothing of the crash gap.
    assert_eq!(all.recorded.summary.measured_ms, 100 + 30_000);
}

#[test]
fn the_header_lists_every_parameter_set_of_the_window() {
    let params = service(1, 1, vec![check("dns", 1_000)]);
    let mut changed = params.clone();
    changed.rise = 2;
    changed.fall = 3;
    let mut script = vec![(T0, Input::Start)];
    script.extend((1..10).map(|i| {
        (
            T0 + i * 1_000,
            Input::Result {
                check: "dns".into(),
                observation: Observation::Pass,
                jitter: 0,
            },
        )
    }));
    script.push((
        T0 + 10_500,
        Input::Reload {
            params: changed,
            damping: None,
        },
    ));
    script.push((T0 + 20_000, Input::Stop));
    let mut live = Live::new(params, None);
    live.run(&script);
    let report = replay(
        "dns",
        &live.records,
        None,
        None,
        None,
        &WhatIf {
            fall: Some(5),
            ..WhatIf::default()
        },
    );
    let texts = |run: &anycastd::audit::replay::Run| -> Vec<(i64, i64, String)> {
        run.parameters
            .iter()
            .map(|p| (p.from_ms, p.to_ms, p.text.clone()))
            .collect()
    };
    assert_eq!(
        texts(&report.recorded),
        [
            (T0, T0 + 10_500, "rise 1, fall 1".to_owned()),
            (T0 + 10_500, T0 + 20_000, "rise 2, fall 3".to_owned()),
        ]
    );
    assert_eq!(
        texts(report.what_if.as_ref().unwrap()),
        [
            (T0, T0 + 10_500, "rise 1, fall 5".to_owned()),
            (T0 + 10_500, T0 + 20_000, "rise 2, fall 5".to_owned()),
        ]
    );
    // A window after the reload lists the later set only.
    let later = replay(
        "dns",
        &live.records,
        Some(T0 + 15_000),
        None,
        None,
        &WhatIf::default(),
    );
    assert_eq!(
        texts(&later.recorded),
        [(T0 + 15_000, T0 + 20_000, "rise 2, fall 3".to_owned())]
    );
}

#[test]
fn a_service_added_by_a_reload_is_measured_from_then() {
    let params = service(1, 1, vec![check("dns", 1_000)]);
    let record = |seq: u64, at: i64, event: Event| Record {
        version: anycastd_journal::FORMAT_VERSION,
        seq,
        at_ms: at,
        event,
    };
    let records = vec![
        record(
            1,
            T0,
            Event::DaemonStarted(wire::DaemonStarted {
                version: "t".into(),
                pid: 1,
                config_hash: "h".into(),
                boot_id: "b".into(),
                services: vec![],
            }),
        ),
        record(2, T0 + 5, Event::Reconciled(wire::Reconciled::default())),
        record(
            3,
            T0 + 30_000,
            Event::Reloaded(wire::Reloaded {
                config_hash: "h2".into(),
                added: vec!["dns".into()],
                removed: vec![],
                changed: vec![],
                services: vec![params.clone()],
            }),
        ),
        record(
            4,
            T0 + 31_000,
            Event::CheckEdge(wire::CheckEdge {
                service: "dns".into(),
                check: "dns".into(),
                observation: wire::Observation::Pass,
                polls_since_last_edge: 0,
            }),
        ),
        record(
            5,
            T0 + 31_000,
            Event::Transition(wire::Transition {
                service: "dns".into(),
                from: wire::State::Starting,
                to: wire::State::Healthy,
                cause: wire::Cause::Verdict {
                    healthy: true,
                    checks: vec![wire::CheckResult {
                        check: "dns".into(),
                        observation: wire::Observation::Pass,
                    }],
                },
                healthy_streak: 1,
                unhealthy_streak: 0,
                change: wire::Change::Announce,
                prefixes: params.prefixes.clone(),
            }),
        ),
        record(
            6,
            T0 + 60_000,
            Event::DaemonStopped(wire::DaemonStopped {
                reason: "SIGTERM".into(),
                outcome: wire::StopOutcome::HandedOver,
            }),
        ),
    ];
    let report = replay("dns", &records, None, None, None, &WhatIf::default());
    assert!(report.divergences.is_empty(), "{:?}", report.divergences);
    assert_eq!(
        report.from_ms,
        T0 + 30_000,
        "the window starts when it was added"
    );
    let s = &report.recorded.summary;
    assert_eq!(
        (s.measured_ms, s.starting_ms, s.announced_ms),
        (30_000, 1_000, 29_000)
    );
    // Asked from the start, the time before it existed is not measured either.
    let report = replay("dns", &records, Some(T0), None, None, &WhatIf::default());
    assert_eq!(report.recorded.summary.measured_ms, 30_000);
}

#[test]
fn a_damaged_run_count_is_a_divergence_not_an_endless_replay() {
    let mut live = three_failures(1, 1);
    for record in &mut live.records {
        if let Event::Runs(runs) = &mut record.event {
            runs.segments[0].count = u64::MAX / 3;
        }
    }
    // (Before, this allocated without bound.)
    let report = replay("dns", &live.records, None, None, None, &WhatIf::default());
    assert!(
        report
            .divergences
            .iter()
            .any(|d| d.replayed.contains("impossible before the record's time")),
        "{:#?}",
        report.divergences
    );
}

#[test]
fn random_records_and_windows_never_panic() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed | 1);
        let live = three_failures(1 + rng.below(3) as u32, 1 + rng.below(3) as u32);
        let mut records = live.records.clone();
        // Shuffle, drop and retime some records: a journal after retention or an edit.
        for _ in 0..rng.below(10) {
            let i = rng.below(records.len() as u64) as usize;
            match rng.below(3) {
                0 => {
                    records.remove(i);
                }
                1 => records[i].at_ms = records[i].at_ms.wrapping_add(rng.next() as i64 >> 20),
                _ => {
                    let j = rng.below(records.len() as u64) as usize;
                    records.swap(i, j);
                }
            }
            if records.is_empty() {
                break;
            }
        }
        let pick = |rng: &mut Rng| -> Option<i64> {
            match rng.below(4) {
                0 => None,
                1 => Some(rng.next() as i64),
                _ => Some(T0 + rng.below(100_000_000) as i64 - 50_000_000),
            }
        };
        let (since, until, now) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
        let report = replay(
            "dns",
            &records,
            since,
            until,
            now,
            &WhatIf {
                with_shadow: Vec::new(),
                on_unhealthy: None,
                drain_grace_ms: None,
                rise: Some(2),
                fall: None,
                damping: None,
            },
        );
        let _ = anycastd::audit::replay::render_text(&report);
    }
}

fn fixture_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The flap storm: dns (one check, rise 1, fall 1, 1 s interval) healthy, then 24 failure
/// episodes lasting 1, 2, 5, 1, 2, 5, ... results, 20 s apart, then a clean stop.
fn flap_storm() -> Vec<Record> {
    let base = 1_795_500_000_000;
    let mut script = vec![(base - 5, Input::Start)];
    let mut at = base + 1_000;
    let result = |at: i64, observation: Observation| {
        (
            at,
            Input::Result {
                check: "c0".into(),
                observation,
                jitter: 0,
            },
        )
    };
    script.push(result(at, Observation::Pass));
    for episode in 0..24 {
        for _ in 0..10 {
            at += 1_000;
            script.push(result(at, Observation::Pass));
        }
        let length = [1, 2, 5][episode % 3];
        for _ in 0..length {
            at += 1_000;
            script.push(result(at, Observation::Fail("resolver timeout".into())));
        }
        for _ in 0..(10 - length) {
            at += 1_000;
            script.push(result(at, Observation::Pass));
        }
    }
    script.push((at + 1_000, Input::Stop));
    let mut live = Live::new(service(1, 1, vec![check("c0", 1_000)]), None);
    live.run(&script);
    live.records
}

#[test]
#[ignore = "writes the replay fuzz target's seed"]
fn write_the_replay_fuzz_seed() {
    // A window (since, until, now, flags, rise, fall) and the flap storm's records.
    let mut seed = Vec::new();
    seed.extend_from_slice(&1_795_500_030_000i64.to_le_bytes());
    seed.extend_from_slice(&1_795_500_300_000i64.to_le_bytes());
    seed.extend_from_slice(&1_795_500_600_000i64.to_le_bytes());
    seed.extend_from_slice(&[0b111, 2, 3]);
    for r in flap_storm() {
        let value = anycastd_journal::codec::encode(r.at_ms, &r.event).unwrap();
        seed.extend_from_slice(&(value.len() as u16).to_le_bytes());
        seed.extend_from_slice(&value);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/replay");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("flap-storm"), seed).unwrap();
}

#[test]
#[ignore = "writes the checked-in flap-storm journal"]
fn write_the_flap_storm_fixture() {
    let dir = fixture_dir("flap-storm");
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut journal = Journal::open(&dir, &Options::default()).unwrap();
        for r in flap_storm() {
            journal.append(r.at_ms, &[r.event]).unwrap();
        }
        journal.flush().unwrap();
    }
    std::fs::remove_file(dir.join(anycastd_journal::LOCK_FILE)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn anycastd(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn offline_config(dir: &Path, journal: &Path) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[control]\nsocket = {:?}\n[services.dns]\nprefixes.frrouting = [\"203.0.113.53\"]\nchecks.cabourotte = [\"c0\"]\n",
            journal.display().to_string(),
            dir.join("ctl.sock").display().to_string()
        ),
    )
    .unwrap();
    config
}

#[test]
fn the_flap_storm_replays_to_its_golden_timeline_and_fall_3_shows_fewer_flaps() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_dir(&fixture_dir("flap-storm"), &journal);
    let config = offline_config(dir.path(), &journal);
    let (code, out, err) = anycastd(&["replay", "dns", "--fall", "3"], &config);
    assert_eq!(code, 0, "{err}");
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/replay/flap-storm-fall-3.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &out).unwrap();
    }
    assert_eq!(out, std::fs::read_to_string(&golden).unwrap());
    let (_, json, _) = anycastd(&["replay", "dns", "--fall", "3", "--json"], &config);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["recorded"]["summary"]["flaps"], 24);
    assert_eq!(
        report["what_if"]["summary"]["flaps"], 8,
        "only the 5-result episodes reach fall 3"
    );
    assert_eq!(report["divergences"].as_array().unwrap().len(), 0);

    // A damping what-if shows damping: its parameters, each suppression and its end, and
    // why the service stays withdrawn.
    let (code, out, err) = anycastd(
        &[
            "replay",
            "dns",
            "--damping-half-life",
            "60s",
            "--damping-suppress",
            "1500",
        ],
        &config,
    );
    assert_eq!(code, 0, "{err}");
    let what_if = &out[out.find("what-if:").unwrap()..];
    assert!(
        what_if.contains("rise 1, fall 1, damping half-life 60.0 s, penalty 1000, suppress 1500, reuse 750, max suppress 240.0 s"),
        "{what_if}"
    );
    assert!(
        what_if.contains("flap damping: penalty 1")
            && what_if.contains("above suppress: held withdrawn until about "),
        "{what_if}"
    );
    assert!(what_if.contains("no longer suppressed"), "{what_if}");
    let (_, json, _) = anycastd(
        &[
            "replay",
            "dns",
            "--damping-half-life",
            "60s",
            "--damping-suppress",
            "1500",
            "--json",
        ],
        &config,
    );
    let report: Report = serde_json::from_str(&json).unwrap();
    let what_if = report.what_if.unwrap();
    assert!(what_if.summary.suppressions >= 1);
    assert!(
        what_if.summary.flaps < report.recorded.summary.flaps,
        "suppressed, it flaps less"
    );

    // Bad input.
    assert_eq!(anycastd(&["replay", "nope"], &config).0, 2);
    assert_eq!(anycastd(&["replay", "dns", "--fall", "0"], &config).0, 2);
    assert_eq!(
        anycastd(
            &["replay", "dns", "--since", "1h", "--until", "2h"],
            &config
        )
        .0,
        2
    );
    let (code, _, err) = anycastd(
        &[
            "replay",
            "dns",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2000-01-02T00:00:00Z",
        ],
        &config,
    );
    assert_eq!(code, 0);
    assert!(err.contains("no transitions"), "{err}");
}

#[test]
fn the_real_daemons_journal_replays_without_divergence_across_a_crash() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            "[\n {{ name = \"a\", url = \"{u}\", interval = \"20ms\" }},\n {{ name = \"b\", url = \"{u}\", interval = \"30ms\" }},\n]",
            u = emulator.url()
        ),
        OneService {
            service: "rise = 2\nfall = 2\n",
            ..OneService::default()
        },
    );
    let flap = |emulator: &Emulator, seed: u64| {
        let mut rng = Rng(seed);
        for _ in 0..60 {
            for check in ["a", "b"] {
                let behaviour = match rng.below(6) {
                    0 => Behaviour::Status(500),
                    1 => Behaviour::NotFound,
                    2 => Behaviour::Fail("down".into()),
                    _ => Behaviour::Pass,
                };
                emulator.set(check, behaviour);
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    };
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    first.wait_log("Starting service");
    flap(&emulator, 7);
    first.signal(Signal::SIGKILL);
    first.wait(Duration::from_secs(30));
    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    second.wait_log("Starting service");
    flap(&emulator, 11);
    // Replay through the socket while the daemon runs...
    let (code, out, err) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0, "{err}");
    let running: serde_json::Value = serde_json::from_str(&out).unwrap();
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(Duration::from_secs(30)), 0);
    // ... and directly from the journal once it stopped.
    let (code, out, err) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0, "{err}");
    let stopped: serde_json::Value = serde_json::from_str(&out).unwrap();
    for report in [&running, &stopped] {
        assert_eq!(
            report["divergences"].as_array().unwrap().len(),
            0,
            "{report:#}"
        );
        assert_eq!(
            report["gaps"].as_array().unwrap().len(),
            1,
            "the SIGKILL is a gap"
        );
    }
    assert!(stopped["verified"].as_u64().unwrap() >= 4, "{stopped:#}");
    let (_, text, _) = anycastd(&["replay", "dns"], &config);
    assert!(text.contains("reproduces all"), "{text}");
    assert!(text.contains("gap: the daemon was killed"), "{text}");
}

#[test]
fn a_journal_of_the_first_format_version_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("journal/tests/fixtures/journal-v1"),
        &journal,
    );
    let config = offline_config(dir.path(), &journal);
    let (code, out, err) = anycastd(&["replay", "dns"], &config);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("replay of dns from"), "{out}");
    let (code, out, _) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The fixture is one record of every kind, not a consistent run: its transitions are
    // all accounted for, as verified or as divergences.
    let transitions = report["recorded"]["timeline"].as_array().unwrap().len();
    assert!(transitions >= 2, "{report:#}");
}

#[test]
fn a_format_1_flap_storm_replays_and_says_where_its_times_are_approximate() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_dir(&fixture_dir("flap-storm-v1"), &journal);
    let config = offline_config(dir.path(), &journal);
    let (code, out, err) = anycastd(&["replay", "dns", "--fall", "3", "--json"], &config);
    assert_eq!(code, 0, "{err}");
    let report: Report = serde_json::from_str(&out).unwrap();
    assert!(report.divergences.is_empty(), "{:#?}", report.divergences);
    assert_eq!(report.recorded.summary.flaps, 24);
    assert_eq!(report.what_if.as_ref().unwrap().summary.flaps, 8);
    assert!(!report.approximate.is_empty());
    let (_, text, _) = anycastd(&["replay", "dns", "--fall", "3"], &config);
    assert!(text.contains("approximate: from "), "{text}");
}

/// A script for graded announcements: check c0 every second; failures while healthy (a
/// de-preferred spell under deprefer), an operator drain while healthy and its undrain, a
/// drain while unhealthy and its undrain, then a drain while healthy that lasts to the stop.
fn graded_script() -> Vec<(i64, Input)> {
    let mut script = vec![(T0, Input::Start)];
    let results = "PPPPFFFFPPPPPPPPPPPPPFFPPPPPPFFFFFFPPPPPPPP";
    for (i, c) in results.chars().enumerate() {
        let at = T0 + 1_000 * (i as i64 + 1);
        script.push((
            at,
            Input::Result {
                check: "c0".into(),
                observation: if c == 'P' {
                    Observation::Pass
                } else {
                    Observation::Fail("refused".into())
                },
                jitter: 0,
            },
        ));
        match i {
            // Healthy: a drain (a grace under drain_grace), undrained after it.
            11 => script.push((at + 300, Input::Drain { expires_at: None })),
            17 => script.push((at + 300, Input::Undrain)),
            // Unhealthy: a drain (de-preferred: announced, so a grace too), and its undrain.
            31 => script.push((at + 300, Input::Drain { expires_at: None })),
            33 => script.push((at + 300, Input::Undrain)),
            // Healthy again: drained to the stop (its grace over before it).
            38 => script.push((at + 300, Input::Drain { expires_at: None })),
            _ => {}
        }
    }
    let end = T0 + 1_000 * (results.len() as i64 + 1);
    script.push((end, Input::Stop));
    script
}

fn graded(on_unhealthy: fsm::OnUnhealthy, grace_ms: u64) -> anycastd::service::Graded {
    anycastd::service::Graded {
        on_unhealthy,
        deprefer: (on_unhealthy == fsm::OnUnhealthy::Deprefer).then(|| anycastd::bgp::Attributes {
            as_path_prepend: 3,
            ..anycastd::bgp::Attributes::default()
        }),
        drain_grace: Duration::from_millis(grace_ms),
    }
}

fn live_graded(on_unhealthy: fsm::OnUnhealthy, grace_ms: u64) -> Live {
    let mut live = Live::new(service(1, 1, vec![check("c0", 1_000)]), None);
    live.graded = graded(on_unhealthy, grace_ms);
    live.run(&graded_script());
    live
}

/// (time, kind, from, to) of a timeline.
fn steps(run: &anycastd::audit::replay::Run) -> Vec<(i64, String, String, String)> {
    run.timeline
        .iter()
        .map(|s| (s.at_ms, s.kind.clone(), s.from.clone(), s.to.clone()))
        .collect()
}

#[test]
fn a_what_if_of_on_unhealthy_and_drain_grace_equals_a_live_run_with_those_settings() {
    use fsm::OnUnhealthy::{Deprefer, Withdraw};
    let plain = live_graded(Withdraw, 0);
    let deprefer = live_graded(Deprefer, 0);
    let grace = live_graded(Withdraw, 3_000);
    let both = live_graded(Deprefer, 3_000);
    let recorded = |live: &Live| replay("dns", &live.records, None, None, None, &WhatIf::default());
    for (live, on_unhealthy, grace_ms) in [
        (&deprefer, Deprefer, 0),
        (&grace, Withdraw, 3_000),
        (&both, Deprefer, 3_000),
    ] {
        let what_if = WhatIf {
            on_unhealthy: Some(on_unhealthy),
            drain_grace_ms: Some(grace_ms),
            ..WhatIf::default()
        };
        let what = format!("{on_unhealthy:?}, grace {grace_ms} ms");
        // The plain run's journal under these settings is the live run's own journal.
        let replayed = replay("dns", &plain.records, None, None, None, &what_if);
        let live_report = recorded(live);
        assert!(
            live_report.divergences.is_empty(),
            "{what}: {:#?}",
            live_report.divergences
        );
        assert!(
            replayed.divergences.is_empty(),
            "{what}: {:#?}",
            replayed.divergences
        );
        let what_if_run = replayed.what_if.as_ref().unwrap();
        assert_eq!(
            (replayed.from_ms, replayed.to_ms),
            (live_report.from_ms, live_report.to_ms),
            "{what}"
        );
        assert_eq!(
            steps(what_if_run)
                .into_iter()
                .filter(|s| s.1 != "fleet-guard")
                .collect::<Vec<_>>(),
            steps(&live_report.recorded),
            "{what}"
        );
        assert_eq!(what_if_run.summary, live_report.recorded.summary, "{what}");
        // And back: the live run's journal with the plain settings is the plain run.
        let back = replay(
            "dns",
            &live.records,
            None,
            None,
            None,
            &WhatIf {
                on_unhealthy: Some(Withdraw),
                drain_grace_ms: Some(0),
                ..WhatIf::default()
            },
        );
        let plain_report = recorded(&plain);
        assert_eq!(
            back.what_if.as_ref().unwrap().summary,
            plain_report.recorded.summary,
            "{what} back"
        );
        assert_eq!(
            steps(back.what_if.as_ref().unwrap()),
            steps(&plain_report.recorded),
            "{what} back"
        );
    }
    // A what-if that changes nothing else (rise 1 as recorded) keeps what the journal shows:
    // deprefer from its de-preferred levels, each drain's recorded grace.
    for live in [&deprefer, &grace, &both] {
        let same = replay(
            "dns",
            &live.records,
            None,
            None,
            None,
            &WhatIf {
                rise: Some(1),
                ..WhatIf::default()
            },
        );
        let what_if_run = same.what_if.as_ref().unwrap();
        assert_eq!(what_if_run.summary, same.recorded.summary);
        assert_eq!(steps(what_if_run), steps(&same.recorded));
    }
    // The figures themselves: the plain run withdraws three times, the de-preferred one
    // never (announced de-preferred exactly while the plain one was out).
    let p = recorded(&plain).recorded.summary;
    let d = recorded(&deprefer).recorded.summary;
    let g = recorded(&grace).recorded.summary;
    assert_eq!((p.flaps, p.depreferred_ms, p.grace_ms), (3, 0, 0), "{p:?}");
    assert!(p.outages >= 3 && p.outage_ms > 0, "{p:?}");
    assert_eq!(
        (d.flaps, d.outages, d.outage_ms, d.mean_time_to_repair_ms),
        (0, 0, 0, None),
        "{d:?}"
    );
    assert_eq!(d.depreferred_ms, p.outage_ms, "{d:?} vs {p:?}");
    // Under drain_grace 3 s: each drain while healthy has a grace of 3 s; the drain of the
    // withdrawn (unhealthy) service has none.
    assert_eq!(g.grace_ms, 6_000, "{g:?}");
    assert_eq!(g.drained_ms + g.grace_ms, p.drained_ms, "{g:?} vs {p:?}");
    assert_eq!(g.flaps, p.flaps);
}

#[test]
fn journals_from_before_format_6_report_exactly_as_before() {
    // The goldens are what `report` printed before graded announcements (the build of
    // d311f9d); the JSON gains the level figures (all 0) and keeps every other one.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, fixture) in [
        ("flap-storm", fixture_dir("flap-storm")),
        ("flap-storm-v1", fixture_dir("flap-storm-v1")),
        ("journal-v1", root.join("journal/tests/fixtures/journal-v1")),
        ("journal-v2", root.join("journal/tests/fixtures/journal-v2")),
        ("journal-v3", root.join("journal/tests/fixtures/journal-v3")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        copy_dir(&fixture, &journal);
        let config = offline_config(dir.path(), &journal);
        let golden = root.join("tests/golden/report");
        let (code, text, err) = anycastd(&["report"], &config);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(
            text,
            std::fs::read_to_string(golden.join(format!("{name}.txt"))).unwrap(),
            "{name}"
        );
        let (_, json, _) = anycastd(&["report", "--json"], &config);
        let now: serde_json::Value = serde_json::from_str(&json).unwrap();
        let before: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(golden.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let rows = before["rows"].as_array().unwrap();
        assert_eq!(rows.len(), now["rows"].as_array().unwrap().len(), "{name}");
        for (old, new) in rows.iter().zip(now["rows"].as_array().unwrap()) {
            for (key, value) in old["summary"].as_object().unwrap() {
                assert_eq!(&new["summary"][key], value, "{name}: {key}");
            }
            for key in ["depreferred_ms", "grace_ms", "held_ms"] {
                assert_eq!(new["summary"][key], 0, "{name}: {key}");
            }
        }
    }
}

#[test]
fn replay_what_ifs_of_levels_reject_wrong_usage_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_dir(&fixture_dir("flap-storm"), &journal);
    let config = offline_config(dir.path(), &journal);
    for (args, says) in [
        (
            &["--on-unhealthy", "maybe"][..],
            "invalid value 'maybe' for '--on-unhealthy",
        ),
        (
            &["--drain-grace", "2h"][..],
            "invalid value '2h' for '--drain-grace",
        ),
        (&["--drain-grace=-5s"][..], "--drain-grace"),
    ] {
        let mut all = vec!["replay", "dns"];
        all.extend_from_slice(args);
        let (code, _, err) = anycastd(&all, &config);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A what-if of deprefer on the flap storm: every withdrawal becomes a de-preferred spell.
    let (code, json, err) = anycastd(
        &["replay", "dns", "--on-unhealthy", "deprefer", "--json"],
        &config,
    );
    assert_eq!(code, 0, "{err}");
    let report: Report = serde_json::from_str(&json).unwrap();
    let (recorded, what_if) = (
        &report.recorded.summary,
        &report.what_if.as_ref().unwrap().summary,
    );
    assert_eq!((recorded.flaps, what_if.flaps, what_if.outages), (24, 0, 0));
    assert_eq!(what_if.depreferred_ms, recorded.outage_ms);
    assert_eq!(what_if.transitions, recorded.transitions);
    let (_, text, _) = anycastd(&["replay", "dns", "--on-unhealthy", "deprefer"], &config);
    assert!(text.contains(", on_unhealthy deprefer"), "{text}");
    assert!(text.contains("flaps 24 -> 0"), "{text}");
}
