//! Exhaustive exploration: every input sequence up to a small length, over a two-check
//! service, for several rise/fall settings. Properties checked on every step:
//! - nothing is announced before `rise` consecutive healthy verdicts;
//! - nothing is announced while draining;
//! - announce and withdraw strictly alternate, starting with announce;
//! - the announced flag the actions imply equals `state().announces()`;
//! - a pending check never yields a verdict before its `pending_timeout`.
//!
//! With graded announcements (`on_unhealthy = deprefer`, a drain grace), the same walk over an
//! alphabet with the grace's timer and a drain that cuts a grace short (a second signal):
//! - the level the actions imply equals `wanted()`; an announce always changes the level;
//! - nothing is announced normally before `rise`, nor normally or de-preferred while draining;
//! - a de-prefer service never withdraws on a verdict;
//! - a grace is only entered from an announcement, and a grace timer at or past its end
//!   always leaves the service withdrawn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_fsm::*;
use std::time::Duration;

const TIMEOUT_MS: i64 = 10;

/// A named way to make an input at a moment.
type Letter = (&'static str, Box<dyn Fn(Timestamp) -> Input>);

/// The alphabet with the grace's timer and a drain that cuts a grace short.
fn graded_alphabet() -> Vec<Letter> {
    let mut letters = alphabet();
    letters.push((
        "grace_end",
        Box::new(|at| Input::TimerFired {
            timer: Timer::GraceEnd,
            at,
        }),
    ));
    letters.push((
        "signal2",
        Box::new(|at| Input::DrainAfter {
            cause: DrainCause::Shutdown,
            grace: Duration::ZERO,
            at,
        }),
    ));
    letters
}

fn alphabet() -> Vec<Letter> {
    let observed = |check: usize, o: Observation| {
        Box::new(move |at| Input::Observed {
            check,
            observation: o.clone(),
            at,
        }) as Box<dyn Fn(Timestamp) -> Input>
    };
    vec![
        ("pass0", observed(0, Observation::Pass)),
        ("fail0", observed(0, Observation::Fail("f".into()))),
        ("pend0", observed(0, Observation::Pending)),
        ("pass1", observed(1, Observation::Pass)),
        ("fail1", observed(1, Observation::Fail("f".into()))),
        (
            "timer0",
            Box::new(|at| Input::TimerFired {
                timer: Timer::PendingTimeout(0),
                at,
            }),
        ),
        (
            "drain",
            Box::new(|at| Input::Drain {
                cause: DrainCause::Operator {
                    reason: "r".into(),
                    expires_at: Some(Timestamp(at.0 + 3)),
                    uid: 0,
                },
                at,
            }),
        ),
        ("undrain", Box::new(|at| Input::Undrain { at })),
        (
            "expiry",
            Box::new(|at| Input::TimerFired {
                timer: Timer::DrainExpiry,
                at,
            }),
        ),
        (
            "shutdown",
            Box::new(|at| Input::Drain {
                cause: DrainCause::Shutdown,
                at,
            }),
        ),
    ]
}

struct Walk {
    machine: Machine,
    announced: bool,
    level: Option<Level>,
    steps: Vec<&'static str>,
    /// Since when each check has been pending, tracked independently of the machine.
    pending_since: [Option<i64>; 2],
}

fn explore(depth: usize, rise: u32, fall: u32, fail_early: bool) -> usize {
    explore_graded(depth, rise, fall, fail_early, OnUnhealthy::Withdraw, 0)
}

/// The walk under `on_unhealthy` and a drain grace of `grace_ms` (zero: the plain walk, over
/// the plain alphabet, with the plain invariants as well).
fn explore_graded(
    depth: usize,
    rise: u32,
    fall: u32,
    fail_early: bool,
    on_unhealthy: OnUnhealthy,
    grace_ms: u64,
) -> usize {
    let params = Params {
        require: 0,
        shadow: Vec::new(),
        fail_early,
        rise,
        fall,
        pending_timeouts: vec![Duration::from_millis(TIMEOUT_MS as u64); 2],
        damping: None,
        on_unhealthy,
        drain_grace: Duration::from_millis(grace_ms),
    };
    let plain = on_unhealthy == OnUnhealthy::Withdraw && grace_ms == 0;
    let alphabet = if plain { alphabet() } else { graded_alphabet() };
    let (machine, _) = Machine::new(params, Timestamp(0));
    let mut stack = vec![Walk {
        machine,
        announced: false,
        level: None,
        steps: vec![],
        pending_since: [Some(0), Some(0)],
    }];
    let mut visited = 0;
    while let Some(walk) = stack.pop() {
        visited += 1;
        if walk.steps.len() == depth {
            continue;
        }
        for (name, make) in &alphabet {
            // Each step advances time by 3 ms, so pending timeouts (10 ms) are reached in
            // longer sequences and not in shorter ones.
            let at = Timestamp(3 * (walk.steps.len() as i64 + 1));
            let mut machine = walk.machine.clone();
            let input = make(at);
            let mut pending_since = walk.pending_since;
            if let Input::Observed {
                check, observation, ..
            } = &input
            {
                pending_since[*check] = match observation {
                    Observation::Pending => pending_since[*check].or(Some(at.0)),
                    _ => None,
                };
            }
            let grace_before = machine.grace_until();
            let step = machine.step(input.clone());
            let mut level = walk.level;
            for action in &step.actions {
                match action {
                    Action::Announce(to) => {
                        assert_ne!(
                            level,
                            Some(*to),
                            "announce at the same level: {steps_so_far:?}",
                            steps_so_far = (&walk.steps, name)
                        );
                        if *to == Level::GracefulShutdown {
                            assert!(
                                level.is_some(),
                                "a grace entered from a withdrawal: {:?}",
                                (&walk.steps, name)
                            );
                        }
                        level = Some(*to);
                    }
                    Action::Withdraw => {
                        assert!(
                            level.is_some(),
                            "withdraw without announce: {:?}",
                            (&walk.steps, name)
                        );
                        if on_unhealthy == OnUnhealthy::Deprefer {
                            assert!(
                                !matches!(
                                    step.transition.as_ref().map(|t| &t.cause),
                                    Some(Cause::Verdict(_))
                                ),
                                "a de-prefer service withdrawn on a verdict: {:?}",
                                (&walk.steps, name)
                            );
                        }
                        level = None;
                    }
                    Action::ArmTimer { .. } => {}
                }
            }
            assert_eq!(
                level,
                machine.wanted(),
                "actions and wanted level disagree: {:?}",
                (&walk.steps, name)
            );
            if level == Some(Level::Normal) {
                assert!(
                    machine.counters().healthy_streak >= rise || walk.level == Some(Level::Normal),
                    "announced before rise={rise}: {:?}",
                    (&walk.steps, name)
                );
            }
            if matches!(machine.state(), State::Draining(_)) {
                assert!(
                    matches!(level, None | Some(Level::GracefulShutdown)),
                    "announced while draining: {:?}",
                    (&walk.steps, name)
                );
            }
            if let Input::TimerFired {
                timer: Timer::GraceEnd,
                at,
            } = &input
            {
                if grace_before.is_some_and(|end| *at >= end) {
                    assert_eq!(
                        level,
                        None,
                        "still announced at the grace's end: {:?}",
                        (&walk.steps, name)
                    );
                }
            }
            let mut announced = walk.announced;
            let mut steps = walk.steps.clone();
            steps.push(name);
            for action in step.actions.iter().filter(|_| plain) {
                match action {
                    Action::Announce(_) => {
                        assert!(!announced, "announce twice in a row: {steps:?}");
                        announced = true;
                    }
                    Action::Withdraw => {
                        assert!(announced, "withdraw without announce: {steps:?}");
                        announced = false;
                    }
                    Action::ArmTimer { deadline, .. } => {
                        assert!(*deadline >= at, "timer in the past: {steps:?}");
                    }
                }
            }
            if plain {
                assert_eq!(
                    announced,
                    machine.state().announces(),
                    "actions and state disagree: {steps:?}"
                );
            }
            if plain && announced {
                assert!(
                    machine.counters().healthy_streak >= rise || walk.announced,
                    "announced before rise={rise}: {steps:?}"
                );
                assert!(
                    !matches!(machine.state(), State::Draining(_)),
                    "announced while draining: {steps:?}"
                );
            }
            if let Some(Transition {
                cause: Cause::Verdict(verdict),
                ..
            }) = &step.transition
            {
                // A check pending (counted from the start, the earliest it can have begun)
                // shows as a "no result" failure once its timeout passed, else as pending;
                // a verdict formed while a check is still pending is an early failure (only
                // with fail_early): unhealthy, and some other check failed.
                let mut waited = false;
                for (check, since) in pending_since.iter().enumerate() {
                    if let Some(since) = since {
                        match &verdict.checks[check] {
                            Counted::NoResult { timeout } => {
                                assert!(
                                    at.0 >= since + TIMEOUT_MS,
                                    "verdict from a pending check before its timeout: {steps:?}"
                                );
                                assert_eq!(
                                    timeout.as_millis(),
                                    u128::from(TIMEOUT_MS.unsigned_abs())
                                );
                            }
                            Counted::Seen(Observation::Pending) => waited = true,
                            other => panic!("pending check counted as {other:?}: {steps:?}"),
                        }
                    }
                }
                if waited {
                    assert!(fail_early, "a verdict that did not wait: {steps:?}");
                    assert!(
                        !verdict.healthy,
                        "healthy while a check is pending: {steps:?}"
                    );
                    assert!(
                        verdict.checks.iter().any(|c| matches!(
                            c,
                            Counted::Seen(Observation::Fail(_)) | Counted::NoResult { .. }
                        )),
                        "an early verdict without a failure: {steps:?}"
                    );
                }
            }
            stack.push(Walk {
                machine,
                announced,
                level,
                steps,
                pending_since,
            });
        }
    }
    visited
}

#[test]
fn all_sequences_up_to_length_six_keep_the_invariants_with_rise_and_fall_one() {
    assert!(explore(6, 1, 1, true) > 1_000_000);
}

#[test]
fn all_sequences_up_to_length_six_keep_the_invariants_when_every_verdict_waits_for_pending_checks()
{
    // The rule of journals written before fail_early: no verdict while a check is pending.
    explore(6, 1, 1, false);
}

#[test]
fn all_sequences_up_to_length_six_keep_the_invariants_with_rise_two_fall_two() {
    explore(6, 2, 2, true);
}

#[test]
fn all_sequences_up_to_length_five_keep_the_invariants_with_rise_three_fall_one() {
    explore(5, 3, 1, true);
}

#[test]
fn all_sequences_up_to_length_five_keep_the_invariants_of_a_deprefer_service() {
    explore_graded(5, 1, 1, true, OnUnhealthy::Deprefer, 0);
}

#[test]
fn all_sequences_up_to_length_five_keep_the_invariants_of_a_deprefer_service_with_a_grace() {
    // A grace of 4 ms: the walk's 3 ms steps reach its end within the sequence.
    explore_graded(5, 2, 1, true, OnUnhealthy::Deprefer, 4);
}

#[test]
fn all_sequences_up_to_length_five_keep_the_invariants_of_a_withdraw_service_with_a_grace() {
    explore_graded(5, 1, 2, true, OnUnhealthy::Withdraw, 4);
}
