//! Exhaustive exploration: every input sequence up to a small length, over a two-check
//! service, for several rise/fall settings. Properties checked on every step:
//! - nothing is announced before `rise` consecutive healthy verdicts;
//! - nothing is announced while draining;
//! - announce and withdraw strictly alternate, starting with announce;
//! - the announced flag the actions imply equals `state().announces()`;
//! - a pending check never yields a verdict before its `pending_timeout`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_fsm::*;
use std::time::Duration;

const TIMEOUT_MS: i64 = 10;

/// A named way to make an input at a moment.
type Letter = (&'static str, Box<dyn Fn(Timestamp) -> Input>);

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
    steps: Vec<&'static str>,
    /// Since when each check has been pending, tracked independently of the machine.
    pending_since: [Option<i64>; 2],
}

fn explore(depth: usize, rise: u32, fall: u32, fail_early: bool) -> usize {
    let params = Params {
        require: 0,
        shadow: Vec::new(),
        fail_early,
        rise,
        fall,
        pending_timeouts: vec![Duration::from_millis(TIMEOUT_MS as u64); 2],
        damping: None,
    };
    let alphabet = alphabet();
    let (machine, _) = Machine::new(params, Timestamp(0));
    let mut stack = vec![Walk {
        machine,
        announced: false,
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
            let step = machine.step(input);
            let mut announced = walk.announced;
            let mut steps = walk.steps.clone();
            steps.push(name);
            for action in &step.actions {
                match action {
                    Action::Announce => {
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
            assert_eq!(
                announced,
                machine.state().announces(),
                "actions and state disagree: {steps:?}"
            );
            if announced {
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
