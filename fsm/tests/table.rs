//! One test per (state, input) pair of the transition table, plus the rise/fall and pending
//! rules. Time is counted in milliseconds from zero; no clock is read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_fsm::*;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn t(ms: i64) -> Timestamp {
    Timestamp(ms)
}

fn operator(expires_at: Option<Timestamp>) -> DrainCause {
    DrainCause::Operator {
        reason: "maintenance".into(),
        expires_at,
        uid: 0,
    }
}

/// A one-check machine in `state` whose check has already passed once (so nothing is pending).
fn machine_in(state: State) -> Machine {
    let (mut machine, _) = Machine::with_state(Params::new(vec![TIMEOUT]), state, t(0));
    let _ = machine.step(Input::Observed {
        check: 0,
        observation: Observation::Pass,
        at: t(1),
    });
    machine
}

fn fresh(state: State) -> Machine {
    Machine::with_state(Params::new(vec![TIMEOUT]), state, t(0)).0
}

fn pass(at: i64) -> Input {
    Input::Observed {
        check: 0,
        observation: Observation::Pass,
        at: t(at),
    }
}

fn fail(at: i64) -> Input {
    Input::Observed {
        check: 0,
        observation: Observation::Fail("down".into()),
        at: t(at),
    }
}

fn pending(at: i64) -> Input {
    Input::Observed {
        check: 0,
        observation: Observation::Pending,
        at: t(at),
    }
}

fn pending_timer(at: i64) -> Input {
    Input::TimerFired {
        timer: Timer::PendingTimeout(0),
        at: t(at),
    }
}

fn drain_timer(at: i64) -> Input {
    Input::TimerFired {
        timer: Timer::DrainExpiry,
        at: t(at),
    }
}

fn to_of(step: &Step) -> Option<State> {
    step.transition.as_ref().map(|tr| tr.to.clone())
}

fn moves(step: &Step) -> Vec<Action> {
    step.actions
        .iter()
        .filter(|a| matches!(a, Action::Announce(_) | Action::Withdraw))
        .cloned()
        .collect()
}

// ---- Starting ----

#[test]
fn starting_on_pass_goes_healthy_and_announces() {
    let mut m = fresh(State::Starting);
    let step = m.step(pass(5));
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
}

#[test]
fn starting_on_fail_goes_unhealthy_without_withdrawing() {
    let mut m = fresh(State::Starting);
    let step = m.step(fail(5));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(
        moves(&step),
        vec![],
        "nothing was announced, so nothing to withdraw"
    );
}

#[test]
fn starting_on_pending_stays_and_yields_no_verdict() {
    let mut m = fresh(State::Starting);
    let step = m.step(pending(5));
    assert_eq!(step.transition, None);
    assert_eq!(m.counters(), Counters::default());
}

#[test]
fn starting_on_pending_timeout_counts_as_failure() {
    let mut m = fresh(State::Starting);
    let step = m.step(pending_timer(10_000));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    let Some(Transition {
        cause: Cause::Verdict(v),
        ..
    }) = step.transition
    else {
        panic!("expected a verdict")
    };
    assert_eq!(
        v.checks,
        vec![Counted::NoResult {
            timeout: Duration::from_secs(10)
        }]
    );
}

#[test]
fn starting_on_early_pending_timer_is_ignored() {
    let mut m = fresh(State::Starting);
    assert_eq!(m.step(pending_timer(9_999)), Step::default());
}

#[test]
fn starting_on_drain_expiry_timer_is_noop() {
    let mut m = fresh(State::Starting);
    assert_eq!(m.step(drain_timer(50)), Step::default());
}

#[test]
fn starting_on_operator_drain_goes_draining_without_withdrawing() {
    let mut m = fresh(State::Starting);
    let step = m.step(Input::Drain {
        cause: operator(None),
        at: t(5),
    });
    assert_eq!(to_of(&step), Some(State::Draining(operator(None))));
    assert_eq!(moves(&step), vec![]);
}

#[test]
fn starting_on_shutdown_goes_draining() {
    let mut m = fresh(State::Starting);
    let step = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(5),
    });
    assert_eq!(to_of(&step), Some(State::Draining(DrainCause::Shutdown)));
}

#[test]
fn starting_on_undrain_is_noop() {
    let mut m = fresh(State::Starting);
    assert_eq!(m.step(Input::Undrain { at: t(5) }), Step::default());
}

// ---- Healthy ----

#[test]
fn healthy_on_pass_stays() {
    let mut m = machine_in(State::Healthy);
    assert_eq!(m.step(pass(5)).transition, None);
}

#[test]
fn healthy_on_fail_goes_unhealthy_and_withdraws() {
    let mut m = machine_in(State::Healthy);
    let step = m.step(fail(5));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn healthy_on_pending_stays_and_arms_the_pending_timer() {
    let mut m = machine_in(State::Healthy);
    let step = m.step(pending(5));
    assert_eq!(step.transition, None);
    assert_eq!(
        step.actions,
        vec![Action::ArmTimer {
            timer: Timer::PendingTimeout(0),
            deadline: t(10_005)
        }]
    );
}

#[test]
fn healthy_on_pending_timeout_withdraws() {
    let mut m = machine_in(State::Healthy);
    let _ = m.step(pending(5));
    let step = m.step(pending_timer(10_005));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn healthy_on_stale_pending_timer_after_a_result_is_ignored() {
    let mut m = machine_in(State::Healthy);
    let _ = m.step(pending(5));
    let _ = m.step(pass(6));
    assert_eq!(m.step(pending_timer(10_005)), Step::default());
}

#[test]
fn healthy_on_drain_expiry_timer_is_noop() {
    let mut m = machine_in(State::Healthy);
    assert_eq!(m.step(drain_timer(5)), Step::default());
}

#[test]
fn healthy_on_operator_drain_withdraws() {
    let mut m = machine_in(State::Healthy);
    let step = m.step(Input::Drain {
        cause: operator(Some(t(60_000))),
        at: t(5),
    });
    assert_eq!(
        to_of(&step),
        Some(State::Draining(operator(Some(t(60_000)))))
    );
    assert_eq!(
        step.actions,
        vec![
            Action::Withdraw,
            Action::ArmTimer {
                timer: Timer::DrainExpiry,
                deadline: t(60_000)
            }
        ]
    );
}

#[test]
fn healthy_on_shutdown_withdraws() {
    let mut m = machine_in(State::Healthy);
    let step = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(5),
    });
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn healthy_on_removal_withdraws() {
    let mut m = machine_in(State::Healthy);
    let step = m.step(Input::Drain {
        cause: DrainCause::Removed,
        at: t(5),
    });
    assert_eq!(to_of(&step), Some(State::Draining(DrainCause::Removed)));
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn healthy_on_undrain_is_noop() {
    let mut m = machine_in(State::Healthy);
    assert_eq!(m.step(Input::Undrain { at: t(5) }), Step::default());
}

// ---- Unhealthy ----

fn unhealthy() -> Machine {
    let mut m = fresh(State::Starting);
    let _ = m.step(fail(1));
    assert_eq!(m.state(), &State::Unhealthy);
    m
}

#[test]
fn unhealthy_on_pass_goes_healthy_and_announces() {
    let mut m = unhealthy();
    let step = m.step(pass(5));
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
}

#[test]
fn unhealthy_on_fail_stays() {
    let mut m = unhealthy();
    assert_eq!(m.step(fail(5)).transition, None);
    assert_eq!(m.counters().unhealthy_streak, 2);
}

#[test]
fn unhealthy_on_pending_stays() {
    let mut m = unhealthy();
    assert_eq!(m.step(pending(5)).transition, None);
}

#[test]
fn unhealthy_on_pending_timeout_stays() {
    let mut m = unhealthy();
    let _ = m.step(pending(5));
    assert_eq!(m.step(pending_timer(10_005)).transition, None);
}

#[test]
fn unhealthy_on_drain_expiry_timer_is_noop() {
    let mut m = unhealthy();
    assert_eq!(m.step(drain_timer(5)), Step::default());
}

#[test]
fn unhealthy_on_operator_drain_goes_draining_without_withdrawing_again() {
    let mut m = unhealthy();
    let step = m.step(Input::Drain {
        cause: operator(None),
        at: t(5),
    });
    assert_eq!(to_of(&step), Some(State::Draining(operator(None))));
    assert_eq!(moves(&step), vec![]);
}

#[test]
fn unhealthy_on_shutdown_goes_draining() {
    let mut m = unhealthy();
    let step = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(5),
    });
    assert_eq!(to_of(&step), Some(State::Draining(DrainCause::Shutdown)));
}

#[test]
fn unhealthy_on_undrain_is_noop() {
    let mut m = unhealthy();
    assert_eq!(m.step(Input::Undrain { at: t(5) }), Step::default());
}

// ---- Draining ----

fn drained(cause: DrainCause) -> Machine {
    let mut m = machine_in(State::Healthy);
    let _ = m.step(Input::Drain { cause, at: t(2) });
    m
}

#[test]
fn draining_on_pass_stays_withdrawn_but_counts() {
    let mut m = drained(operator(None));
    let step = m.step(pass(5));
    assert_eq!(step.transition, None);
    assert_eq!(moves(&step), vec![]);
    assert_eq!(m.counters().healthy_streak, 2);
}

#[test]
fn draining_on_fail_stays_and_counts() {
    let mut m = drained(operator(None));
    assert_eq!(m.step(fail(5)).transition, None);
    assert_eq!(m.counters().unhealthy_streak, 1);
}

#[test]
fn draining_on_pending_stays() {
    let mut m = drained(operator(None));
    assert_eq!(m.step(pending(5)).transition, None);
}

#[test]
fn draining_on_pending_timeout_stays() {
    let mut m = drained(DrainCause::Shutdown);
    let _ = m.step(pending(5));
    assert_eq!(m.step(pending_timer(10_005)).transition, None);
}

#[test]
fn draining_on_drain_expiry_returns_to_healthy_when_checks_pass() {
    let mut m = drained(operator(Some(t(1_000))));
    let step = m.step(drain_timer(1_000));
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(
        step.transition.as_ref().map(|tr| tr.cause.clone()),
        Some(Cause::DrainExpired)
    );
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
}

#[test]
fn draining_on_early_drain_expiry_is_ignored() {
    let mut m = drained(operator(Some(t(1_000))));
    assert_eq!(m.step(drain_timer(999)), Step::default());
}

#[test]
fn draining_without_expiry_ignores_the_drain_timer() {
    let mut m = drained(operator(None));
    assert_eq!(m.step(drain_timer(1_000_000)), Step::default());
}

#[test]
fn draining_on_a_second_identical_drain_is_noop() {
    let mut m = drained(operator(None));
    assert_eq!(
        m.step(Input::Drain {
            cause: operator(None),
            at: t(5)
        })
        .transition,
        None
    );
}

#[test]
fn draining_by_operator_on_shutdown_stays_an_operator_drain() {
    let mut m = drained(operator(None));
    let step = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(5),
    });
    assert_eq!(
        step.transition, None,
        "the operator drain must survive the restart"
    );
    assert_eq!(m.state(), &State::Draining(operator(None)));
}

#[test]
fn draining_by_operator_on_removal_becomes_a_removal() {
    let mut m = drained(operator(None));
    let step = m.step(Input::Drain {
        cause: DrainCause::Removed,
        at: t(5),
    });
    assert_eq!(to_of(&step), Some(State::Draining(DrainCause::Removed)));
    assert_eq!(moves(&step), vec![]);
}

#[test]
fn draining_on_undrain_goes_healthy_when_last_verdicts_passed() {
    let mut m = drained(operator(None));
    let step = m.step(Input::Undrain { at: t(5) });
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
}

#[test]
fn draining_on_undrain_goes_unhealthy_when_a_check_failed() {
    let mut m = drained(operator(None));
    let _ = m.step(fail(3));
    let step = m.step(Input::Undrain { at: t(5) });
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(moves(&step), vec![]);
}

#[test]
fn shutdown_drain_ignores_undrain() {
    let mut m = drained(DrainCause::Shutdown);
    assert_eq!(m.step(Input::Undrain { at: t(5) }), Step::default());
}

// ---- rise / fall / several checks ----

fn two_checks(rise: u32, fall: u32) -> Machine {
    let params = Params {
        rise,
        fall,
        pending_timeouts: vec![TIMEOUT, TIMEOUT],
        require: 0,
        shadow: Vec::new(),
        fail_early: true,
        on_unhealthy: OnUnhealthy::Withdraw,
        drain_grace: Duration::ZERO,
        damping: None,
    };
    Machine::new(params, t(0)).0
}

/// Two checks, rise and fall 1, with `require` and the verdict rule `fail_early`.
fn two_checks_ruled(require: u32, fail_early: bool) -> Machine {
    let params = Params {
        pending_timeouts: vec![TIMEOUT, TIMEOUT],
        require,
        fail_early,
        on_unhealthy: OnUnhealthy::Withdraw,
        drain_grace: Duration::ZERO,
        ..Params::new(Vec::new())
    };
    Machine::new(params, t(0)).0
}

fn obs(check: usize, observation: Observation, at: i64) -> Input {
    Input::Observed {
        check,
        observation,
        at: t(at),
    }
}

#[test]
fn no_verdict_while_any_check_is_pending() {
    let mut m = two_checks(1, 1);
    assert_eq!(m.step(obs(0, Observation::Pass, 1)).transition, None);
    assert_eq!(m.counters(), Counters::default());
    assert_eq!(
        to_of(&m.step(obs(1, Observation::Pass, 2))),
        Some(State::Healthy)
    );
}

#[test]
fn one_failing_check_makes_the_verdict_unhealthy() {
    let mut m = two_checks(1, 1);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let step = m.step(obs(1, Observation::Fail("timeout".into()), 2));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
}

#[test]
fn rise_three_needs_three_consecutive_healthy_verdicts() {
    let mut m = two_checks(3, 1);
    let _ = m.step(obs(0, Observation::Pass, 1));
    assert_eq!(m.step(obs(1, Observation::Pass, 2)).transition, None);
    assert_eq!(m.step(obs(0, Observation::Pass, 3)).transition, None);
    assert_eq!(
        to_of(&m.step(obs(1, Observation::Pass, 4))),
        Some(State::Healthy)
    );
}

#[test]
fn fall_two_tolerates_one_unhealthy_verdict() {
    let mut m = two_checks(1, 2);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, Observation::Pass, 2));
    assert_eq!(
        m.step(obs(0, Observation::Fail("x".into()), 3)).transition,
        None
    );
    assert_eq!(m.step(obs(0, Observation::Pass, 4)).transition, None);
    assert_eq!(
        m.step(obs(0, Observation::Fail("x".into()), 5)).transition,
        None
    );
    let step = m.step(obs(1, Observation::Pass, 6));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(
        step.transition.map(|tr| tr.counters.unhealthy_streak),
        Some(2)
    );
}

#[test]
fn a_restored_healthy_service_stays_announced_while_checks_are_pending() {
    let (mut m, actions) = Machine::with_state(Params::new(vec![TIMEOUT]), State::Healthy, t(0));
    assert_eq!(
        actions,
        vec![Action::ArmTimer {
            timer: Timer::PendingTimeout(0),
            deadline: t(10_000)
        }]
    );
    assert_eq!(m.step(pending(5_000)).transition, None);
    assert_eq!(m.state(), &State::Healthy);
    assert_eq!(m.step(pass(6_000)).transition, None);
}

#[test]
fn a_service_without_checks_is_healthy_on_the_first_verdict() {
    let (mut m, actions) = Machine::new(Params::new(vec![]), t(0));
    assert_eq!(
        actions,
        vec![Action::ArmTimer {
            timer: Timer::Evaluate,
            deadline: t(0)
        }]
    );
    let step = m.step(Input::TimerFired {
        timer: Timer::Evaluate,
        at: t(0),
    });
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
}

#[test]
fn an_observation_for_an_unknown_check_is_ignored() {
    let mut m = fresh(State::Starting);
    assert_eq!(m.step(obs(7, Observation::Pass, 1)), Step::default());
}

#[test]
fn negative_time_spans_saturate_at_zero() {
    assert_eq!(t(10).since(t(20)), Duration::ZERO);
    assert_eq!(t(i64::MAX).after(Duration::from_secs(1)), t(i64::MAX));
}

#[test]
fn set_params_keeps_the_counters() {
    let mut m = two_checks(1, 3);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, Observation::Pass, 2));
    let _ = m.step(obs(0, Observation::Fail("x".into()), 3));
    let before = m.counters();
    let _ = m.set_params(
        Params {
            rise: 2,
            fall: 3,
            pending_timeouts: vec![TIMEOUT, TIMEOUT],
            require: 0,
            shadow: Vec::new(),
            fail_early: true,
            on_unhealthy: OnUnhealthy::Withdraw,
            drain_grace: Duration::ZERO,
            damping: None,
        },
        t(4),
    );
    assert_eq!(m.counters(), before);
    assert_eq!(m.state(), &State::Healthy);
}

#[test]
fn reconfigure_keeps_matching_checks_and_starts_new_ones_pending() {
    let mut m = two_checks(1, 1);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, Observation::Pass, 2));
    assert_eq!(m.state(), &State::Healthy);
    // Old check 1 stays (now at index 0), old check 0 goes, a new check comes.
    let params = Params {
        rise: 1,
        fall: 1,
        pending_timeouts: vec![TIMEOUT, TIMEOUT],
        require: 0,
        shadow: Vec::new(),
        fail_early: true,
        on_unhealthy: OnUnhealthy::Withdraw,
        drain_grace: Duration::ZERO,
        damping: None,
    };
    let actions = m.reconfigure(params, &[Some(1), None], t(3));
    assert_eq!(
        actions,
        vec![Action::ArmTimer {
            timer: Timer::PendingTimeout(1),
            deadline: t(10_003)
        }]
    );
    assert_eq!(
        m.observations().cloned().collect::<Vec<_>>(),
        vec![Observation::Pass, Observation::Pending]
    );
    assert_eq!(m.state(), &State::Healthy, "a reload does not flap");
    // A pass forms no verdict while the new check has not reported ...
    let before = m.counters();
    assert_eq!(m.step(obs(0, Observation::Pass, 4)).transition, None);
    assert_eq!(m.counters(), before);
    // ... a failure does: nothing the new check reports can make it healthy.
    let step = m.step(obs(0, Observation::Fail("x".into()), 5));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
}

#[test]
fn a_failure_decides_while_another_check_is_pending_and_a_pass_waits_for_it() {
    let mut m = two_checks_ruled(0, true);
    assert_eq!(m.step(obs(0, Observation::Pass, 1)).transition, None);
    // Healthy needs both; check 1 has not reported. Check 0 fails: unhealthy at once, the
    // pending check shown as pending.
    let step = m.step(obs(0, Observation::Fail("down".into()), 2));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    let Some(Transition {
        cause: Cause::Verdict(verdict),
        ..
    }) = step.transition
    else {
        panic!("a verdict")
    };
    assert_eq!(
        verdict.checks,
        vec![
            Counted::Seen(Observation::Fail("down".into())),
            Counted::Seen(Observation::Pending)
        ]
    );
    // With require = 1 of 2, one failure leaves the pending check able to pass: it waits.
    let mut m = two_checks_ruled(1, true);
    assert_eq!(
        m.step(obs(0, Observation::Fail("down".into()), 1))
            .transition,
        None
    );
    assert_eq!(
        to_of(&m.step(obs(1, Observation::Pass, 2))),
        Some(State::Healthy)
    );
}

#[test]
fn without_fail_early_a_failure_waits_for_the_pending_checks_as_journals_before_it_were_written() {
    let mut m = two_checks_ruled(0, false);
    assert_eq!(
        m.step(obs(0, Observation::Fail("down".into()), 1))
            .transition,
        None
    );
    assert_eq!(
        to_of(&m.step(obs(1, Observation::Pass, 2))),
        Some(State::Unhealthy)
    );
}

// ---- flap damping (time injected, no clock) ----

fn damped() -> Machine {
    let params = Params {
        rise: 1,
        fall: 1,
        pending_timeouts: vec![TIMEOUT],
        require: 0,
        shadow: Vec::new(),
        fail_early: true,
        on_unhealthy: OnUnhealthy::Withdraw,
        drain_grace: Duration::ZERO,
        damping: Some(Damping {
            penalty: 1000,
            suppress: 2000,
            reuse: 750,
            half_life: Duration::from_secs(60),
            max_suppress: Duration::from_secs(3600),
        }),
    };
    Machine::new(params, t(0)).0
}

#[test]
fn decay_halves_per_half_life_exactly_and_never_grows() {
    let hl = Duration::from_secs(60);
    assert_eq!(decay(1_000_000, Duration::ZERO, hl), 1_000_000);
    assert_eq!(decay(1_000_000, hl, hl), 500_000);
    assert_eq!(decay(1_000_000, hl * 2, hl), 250_000);
    assert_eq!(decay(1_000_000, hl * 64, hl), 0);
    let half = decay(1_000_000, hl / 2, hl);
    assert!((707_100..=707_110).contains(&half), "{half}");
    let mut last = u64::MAX;
    for ms in (0..120_000).step_by(997) {
        let v = decay(1_000_000, Duration::from_millis(ms), hl);
        assert!(v <= last);
        last = v;
    }
}

#[test]
fn a_flapping_service_is_suppressed_and_stays_withdrawn_while_checks_pass() {
    let mut m = damped();
    let mut at = 0;
    let mut withdrawals = 0;
    // Flap every 2 s: penalty 1000 per withdrawal, barely decayed in between.
    while !m.suppressed() {
        at += 2_000;
        let _ = m.step(pass(at));
        at += 2_000;
        let step = m.step(fail(at));
        if moves(&step) == vec![Action::Withdraw] {
            withdrawals += 1;
        }
        assert!(withdrawals <= 3, "suppressed by the third withdrawal");
    }
    assert_eq!(
        withdrawals, 3,
        "2 x 1000 decayed a little is under 2000; the third is over"
    );
    assert!(m.penalty_at(Timestamp(at)) > 2_000_000);
    // Checks pass: still withdrawn.
    for _ in 0..10 {
        at += 1_000;
        let step = m.step(pass(at));
        assert_eq!(step.transition, None);
        assert_eq!(m.state(), &State::Unhealthy);
    }
}

#[test]
fn a_suppressed_service_comes_back_once_the_penalty_decays_and_checks_pass() {
    let mut m = damped();
    let mut at = 0;
    let mut reuse_at = None;
    while reuse_at.is_none() {
        at += 2_000;
        let _ = m.step(pass(at));
        at += 2_000;
        for action in m.step(fail(at)).actions {
            if let Action::ArmTimer {
                timer: Timer::DampingReuse,
                deadline,
            } = action
            {
                reuse_at = Some(deadline);
            }
        }
    }
    let reuse_at = reuse_at.unwrap();
    let _ = m.step(pass(at + 1_000));
    // Penalty ~2900 must fall below 750: a bit under two half-lives.
    assert!(
        reuse_at.0 - at > 100_000 && reuse_at.0 - at < 120_000,
        "{}",
        reuse_at.0 - at
    );
    assert!(m.penalty_at(reuse_at) < 750_000);
    assert!(m.penalty_at(Timestamp(reuse_at.0 - 1)) >= 750_000);
    // An early timer changes nothing (it is armed again).
    let early = m.step(Input::TimerFired {
        timer: Timer::DampingReuse,
        at: Timestamp(reuse_at.0 - 10),
    });
    assert_eq!(early.transition, None);
    assert!(m.suppressed());
    let step = m.step(Input::TimerFired {
        timer: Timer::DampingReuse,
        at: reuse_at,
    });
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(step.transition.unwrap().cause, Cause::Unsuppressed);
    assert!(!m.suppressed());
}

#[test]
fn an_unsuppressed_service_with_failing_checks_stays_withdrawn() {
    let mut m = damped();
    let mut at = 0;
    while !m.suppressed() {
        at += 2_000;
        let _ = m.step(pass(at));
        at += 2_000;
        let _ = m.step(fail(at));
    }
    let step = m.step(Input::TimerFired {
        timer: Timer::DampingReuse,
        at: Timestamp(at + 3_600_000),
    });
    assert_eq!(
        step.transition, None,
        "max_suppress ends the suppression, the failing check keeps it down"
    );
    assert!(!m.suppressed());
    assert_eq!(to_of(&m.step(pass(at + 3_600_001))), Some(State::Healthy));
}

#[test]
fn drain_withdrawals_add_no_penalty() {
    let mut m = damped();
    let _ = m.step(pass(1));
    for i in 0..5 {
        let _ = m.step(Input::Drain {
            cause: operator(None),
            at: t(10 + i * 10),
        });
        let _ = m.step(Input::Undrain { at: t(15 + i * 10) });
    }
    assert_eq!(m.penalty_at(t(100)), 0);
    assert!(!m.suppressed());
}

// ---- require and shadow checks ----

fn three_checks(require: u32, shadow: Vec<bool>) -> (Machine, Vec<Action>) {
    let params = Params {
        pending_timeouts: vec![TIMEOUT, TIMEOUT, TIMEOUT],
        require,
        shadow,
        ..Params::new(Vec::new())
    };
    Machine::new(params, t(0))
}

fn down() -> Observation {
    Observation::Fail("down".into())
}

#[test]
fn require_any_stays_healthy_while_one_check_passes() {
    let (mut m, _) = three_checks(1, vec![]);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, down(), 2));
    assert_eq!(to_of(&m.step(obs(2, down(), 3))), Some(State::Healthy));
    // Two fail, one passes: still healthy; the last passing check fails: unhealthy.
    assert_eq!(m.step(obs(1, down(), 4)).transition, None);
    let step = m.step(obs(0, down(), 5));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
}

#[test]
fn require_two_of_three_counts_passing_checks() {
    let (mut m, _) = three_checks(2, vec![]);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, down(), 2));
    // One of three pass: unhealthy from Starting.
    assert_eq!(to_of(&m.step(obs(2, down(), 3))), Some(State::Unhealthy));
    assert_eq!(
        to_of(&m.step(obs(2, Observation::Pass, 4))),
        Some(State::Healthy)
    );
    // The healthy verdict names the failing check (the cause carries every gating check).
    let step = m.step(obs(2, down(), 5));
    match step.transition.map(|t| t.cause) {
        Some(Cause::Verdict(v)) => {
            assert!(!v.healthy);
            assert_eq!(
                v.checks,
                vec![
                    Counted::Seen(Observation::Pass),
                    Counted::Seen(down()),
                    Counted::Seen(down())
                ]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_shadow_check_never_forms_or_decides_a_verdict() {
    let (mut m, actions) = three_checks(0, vec![false, false, true]);
    // No pending timer for the shadow check.
    let timers: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::ArmTimer {
                timer: Timer::PendingTimeout(c),
                ..
            } => Some(*c),
            _ => None,
        })
        .collect();
    assert_eq!(timers, vec![0, 1]);
    // Its results alone form no verdict, even while the others are known.
    let _ = m.step(obs(2, down(), 1));
    assert_eq!(m.counters(), Counters::default());
    let _ = m.step(obs(0, Observation::Pass, 2));
    let step = m.step(obs(1, Observation::Pass, 3));
    assert_eq!(to_of(&step), Some(State::Healthy));
    // Its failure is shown in the verdict, not counted.
    match step.transition.map(|t| t.cause) {
        Some(Cause::Verdict(v)) => {
            assert!(v.healthy);
            assert_eq!(v.checks[2], Counted::Shadow(down()));
        }
        other => panic!("{other:?}"),
    }
    let before = m.counters();
    assert_eq!(m.step(obs(2, down(), 4)).transition, None);
    assert_eq!(m.counters(), before, "a shadow result counts no verdict");
    // Still pending, a shadow check does not hold verdicts back.
    let (mut m, _) = three_checks(0, vec![false, false, true]);
    let _ = m.step(obs(0, Observation::Pass, 1));
    assert_eq!(
        to_of(&m.step(obs(1, Observation::Pass, 2))),
        Some(State::Healthy)
    );
}

#[test]
fn only_shadow_checks_is_like_no_checks() {
    let (mut m, actions) = three_checks(0, vec![true, true, true]);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::ArmTimer {
            timer: Timer::Evaluate,
            ..
        }
    )));
    let step = m.step(Input::TimerFired {
        timer: Timer::Evaluate,
        at: t(0),
    });
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(m.step(obs(0, down(), 1)).transition, None);
}

// ---- confirming (fast_interval) ----

#[test]
fn confirming_while_a_rise_or_fall_count_is_in_progress() {
    let mut m = two_checks(2, 3);
    assert!(!m.confirming(), "nothing counted yet");
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, Observation::Pass, 2));
    assert!(m.confirming(), "one healthy verdict of two");
    assert_eq!(
        to_of(&m.step(obs(0, Observation::Pass, 3))),
        Some(State::Healthy)
    );
    assert!(!m.confirming(), "healthy, nothing against it");
    let _ = m.step(obs(0, Observation::Fail("x".into()), 4));
    assert!(m.confirming(), "one unhealthy verdict of three");
    let _ = m.step(obs(1, Observation::Pass, 5));
    assert!(m.confirming(), "two of three");
    assert_eq!(
        to_of(&m.step(obs(1, Observation::Fail("y".into()), 6))),
        Some(State::Unhealthy)
    );
    assert!(!m.confirming(), "unhealthy, no healthy verdict yet");
    // rise 1 and fall 1 never confirm: one verdict decides.
    let mut m = two_checks(1, 1);
    let _ = m.step(obs(0, Observation::Pass, 1));
    let _ = m.step(obs(1, Observation::Pass, 2));
    assert!(!m.confirming());
    let _ = m.step(obs(1, Observation::Fail("z".into()), 3));
    assert!(!m.confirming());
}

// ---- levels: de-prefer and drain graces ----

/// A one-check machine in `state` under `on_unhealthy` with a drain grace of `grace_ms`,
/// its check passed once.
fn graded_in(state: State, on_unhealthy: OnUnhealthy, grace_ms: u64) -> Machine {
    let params = Params {
        on_unhealthy,
        drain_grace: Duration::from_millis(grace_ms),
        ..Params::new(vec![TIMEOUT])
    };
    let (mut machine, _) = Machine::with_state(params, state, t(0));
    let _ = machine.step(pass(1));
    machine
}

fn grace_timer(at: i64) -> Input {
    Input::TimerFired {
        timer: Timer::GraceEnd,
        at: t(at),
    }
}

fn timers(step: &Step) -> Vec<(Timer, Timestamp)> {
    step.actions
        .iter()
        .filter_map(|a| match a {
            Action::ArmTimer { timer, deadline } => Some((*timer, *deadline)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_state_wants_its_level_under_each_policy() {
    use OnUnhealthy::{Deprefer, Withdraw};
    for (state, policy, wanted) in [
        (State::Starting, Withdraw, None),
        (State::Starting, Deprefer, None),
        (State::Healthy, Withdraw, Some(Level::Normal)),
        (State::Healthy, Deprefer, Some(Level::Normal)),
        (State::Unhealthy, Withdraw, None),
        (State::Unhealthy, Deprefer, Some(Level::Depreferred)),
        (State::Draining(DrainCause::Shutdown), Deprefer, None),
    ] {
        assert_eq!(
            fresh_graded(state.clone(), policy).wanted(),
            wanted,
            "{state:?} {policy:?}"
        );
    }
}

fn fresh_graded(state: State, on_unhealthy: OnUnhealthy) -> Machine {
    let params = Params {
        on_unhealthy,
        ..Params::new(vec![TIMEOUT])
    };
    Machine::with_state(params, state, t(0)).0
}

#[test]
fn healthy_deprefer_service_on_fail_announces_depreferred_instead_of_withdrawing() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Deprefer, 0);
    let step = m.step(fail(5));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Depreferred)]);
}

#[test]
fn unhealthy_deprefer_service_on_pass_announces_normal_again() {
    let mut m = graded_in(State::Unhealthy, OnUnhealthy::Deprefer, 0);
    let _ = m.step(fail(3));
    let step = m.step(pass(5));
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
}

#[test]
fn starting_deprefer_service_on_fail_announces_depreferred() {
    let params = Params {
        on_unhealthy: OnUnhealthy::Deprefer,
        ..Params::new(vec![TIMEOUT])
    };
    let (mut m, _) = Machine::new(params, t(0));
    let step = m.step(fail(5));
    assert_eq!(to_of(&step), Some(State::Unhealthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Depreferred)]);
}

#[test]
fn healthy_withdraw_service_on_fail_still_withdraws() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let step = m.step(fail(5));
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn healthy_with_a_grace_on_drain_announces_graceful_shutdown_and_arms_the_grace_end() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let step = m.step(Input::Drain {
        cause: operator(None),
        at: t(10),
    });
    assert_eq!(to_of(&step), Some(State::Draining(operator(None))));
    assert_eq!(
        moves(&step),
        vec![Action::Announce(Level::GracefulShutdown)]
    );
    assert_eq!(timers(&step), vec![(Timer::GraceEnd, t(30_010))]);
    assert_eq!(m.grace_until(), Some(t(30_010)));
}

#[test]
fn draining_in_its_grace_at_the_grace_end_withdraws_and_stays_draining() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let _ = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(10),
    });
    let early = m.step(grace_timer(30_009));
    assert_eq!(
        early,
        Step::default(),
        "a timer before its deadline does nothing"
    );
    let step = m.step(grace_timer(30_010));
    let transition = step.transition.clone().unwrap();
    assert_eq!(transition.to, State::Draining(DrainCause::Shutdown));
    assert_eq!(transition.cause, Cause::GraceEnded);
    assert_eq!(moves(&step), vec![Action::Withdraw]);
    assert_eq!(m.wanted(), None);
    assert_eq!(m.grace_until(), None);
}

#[test]
fn draining_in_its_grace_on_a_drain_with_zero_grace_withdraws_at_once() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let _ = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(10),
    });
    let step = m.step(Input::DrainAfter {
        cause: DrainCause::Shutdown,
        grace: Duration::ZERO,
        at: t(500),
    });
    assert_eq!(
        step.transition.clone().map(|t| t.cause),
        Some(Cause::GraceEnded),
        "a second signal"
    );
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn draining_in_its_grace_on_a_shorter_grace_ends_sooner_and_on_a_longer_one_keeps_its_end() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let _ = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(0),
    });
    let longer = m.step(Input::DrainAfter {
        cause: DrainCause::Shutdown,
        grace: Duration::from_secs(60),
        at: t(1_000),
    });
    assert_eq!(longer, Step::default());
    let shorter = m.step(Input::DrainAfter {
        cause: DrainCause::Shutdown,
        grace: Duration::from_secs(5),
        at: t(1_000),
    });
    assert_eq!(
        moves(&shorter),
        vec![],
        "still in its grace, announced as it was"
    );
    assert_eq!(timers(&shorter), vec![(Timer::GraceEnd, t(6_000))]);
    assert_eq!(m.wanted(), Some(Level::GracefulShutdown));
}

#[test]
fn operator_drain_in_its_grace_on_a_shutdown_without_grace_withdraws_and_stays_an_operator_drain() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let _ = m.step(Input::Drain {
        cause: operator(None),
        at: t(0),
    });
    let step = m.step(Input::DrainAfter {
        cause: DrainCause::Shutdown,
        grace: Duration::ZERO,
        at: t(100),
    });
    assert_eq!(to_of(&step), Some(State::Draining(operator(None))));
    assert_eq!(moves(&step), vec![Action::Withdraw]);
}

#[test]
fn drain_with_a_grace_of_a_withdrawn_service_announces_nothing() {
    let mut m = graded_in(State::Unhealthy, OnUnhealthy::Withdraw, 30_000);
    let _ = m.step(fail(3));
    let step = m.step(Input::Drain {
        cause: operator(None),
        at: t(10),
    });
    assert_eq!(moves(&step), vec![]);
    assert_eq!(timers(&step), vec![]);
    assert_eq!(m.grace_until(), None);
}

#[test]
fn unhealthy_deprefer_service_on_drain_with_a_grace_goes_from_depreferred_to_graceful() {
    let mut m = graded_in(State::Unhealthy, OnUnhealthy::Deprefer, 30_000);
    let _ = m.step(fail(3));
    assert_eq!(m.wanted(), Some(Level::Depreferred));
    let step = m.step(Input::Drain {
        cause: DrainCause::Shutdown,
        at: t(10),
    });
    assert_eq!(
        moves(&step),
        vec![Action::Announce(Level::GracefulShutdown)]
    );
}

#[test]
fn drain_after_zero_of_a_healthy_service_withdraws_at_once_whatever_the_configured_grace() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let step = m.step(Input::DrainAfter {
        cause: operator(None),
        grace: Duration::ZERO,
        at: t(10),
    });
    assert_eq!(moves(&step), vec![Action::Withdraw]);
    assert_eq!(m.grace_until(), None);
}

#[test]
fn undrain_in_a_grace_announces_normal_again_and_a_late_grace_timer_does_nothing() {
    let mut m = graded_in(State::Healthy, OnUnhealthy::Withdraw, 30_000);
    let _ = m.step(Input::Drain {
        cause: operator(None),
        at: t(10),
    });
    let step = m.step(Input::Undrain { at: t(20) });
    assert_eq!(to_of(&step), Some(State::Healthy));
    assert_eq!(moves(&step), vec![Action::Announce(Level::Normal)]);
    assert_eq!(m.step(grace_timer(30_010)), Step::default());
}

#[test]
fn restored_grace_keeps_its_journaled_end_and_one_already_over_stays_withdrawn() {
    let (mut m, _) = Machine::with_state(
        Params::new(vec![TIMEOUT]),
        State::Draining(DrainCause::Shutdown),
        t(1_000),
    );
    assert_eq!(
        m.restore_grace(t(5_000), t(1_000)),
        vec![Action::ArmTimer {
            timer: Timer::GraceEnd,
            deadline: t(5_000)
        }]
    );
    assert_eq!(m.wanted(), Some(Level::GracefulShutdown));
    let step = m.step(grace_timer(5_000));
    assert_eq!(moves(&step), vec![Action::Withdraw]);

    let (mut late, _) = Machine::with_state(
        Params::new(vec![TIMEOUT]),
        State::Draining(DrainCause::Shutdown),
        t(9_000),
    );
    assert_eq!(late.restore_grace(t(5_000), t(9_000)), vec![]);
    assert_eq!(late.wanted(), None);
}

#[test]
fn reload_to_deprefer_while_unhealthy_announces_depreferred_and_back_withdraws() {
    let mut m = graded_in(State::Unhealthy, OnUnhealthy::Withdraw, 0);
    let _ = m.step(fail(3));
    assert_eq!(m.state(), &State::Unhealthy);
    let deprefer = Params {
        on_unhealthy: OnUnhealthy::Deprefer,
        ..Params::new(vec![TIMEOUT])
    };
    let actions = m.set_params(deprefer, t(10));
    assert!(actions.contains(&Action::Announce(Level::Depreferred)));
    let actions = m.set_params(Params::new(vec![TIMEOUT]), t(20));
    assert!(actions.contains(&Action::Withdraw));
}
