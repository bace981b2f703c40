//! Cost of one state machine step (a check result for a two-check service), the hot path of
//! every poll. `cargo bench --bench fsm_step`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_fsm::{Input, Machine, Observation, Params, Timestamp};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;

fn steps(c: &mut Criterion) {
    let params = Params {
        require: 0,
        shadow: Vec::new(),
        fail_early: true,
        rise: 2,
        fall: 2,
        pending_timeouts: vec![Duration::from_secs(10); 2],
        damping: None,
        on_unhealthy: anycastd_fsm::OnUnhealthy::Withdraw,
        drain_grace: Duration::ZERO,
    };
    c.bench_function("fsm step: steady pass (no transition)", |b| {
        let (mut machine, _) = Machine::new(params.clone(), Timestamp(0));
        let mut at = 0;
        b.iter(|| {
            at += 1;
            black_box(machine.step(Input::Observed {
                check: (at % 2) as usize,
                observation: Observation::Pass,
                at: Timestamp(at),
            }))
        })
    });
    c.bench_function("fsm step: flapping (a transition every other step)", |b| {
        let params = Params {
            rise: 1,
            fall: 1,
            ..params.clone()
        };
        let (mut machine, _) = Machine::new(params, Timestamp(0));
        let _ = machine.step(Input::Observed {
            check: 1,
            observation: Observation::Pass,
            at: Timestamp(0),
        });
        let mut at = 0;
        b.iter(|| {
            at += 1;
            let observation = if at % 2 == 0 {
                Observation::Pass
            } else {
                Observation::Fail("down".into())
            };
            black_box(machine.step(Input::Observed {
                check: 0,
                observation,
                at: Timestamp(at),
            }))
        })
    });
}

criterion_group!(benches, steps);
criterion_main!(benches);
