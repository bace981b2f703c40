//! Journal appends: one durable (flushed) transition, a batch of 100 under one flush (group
//! commit), and a non-durable check edge. `cargo bench --bench journal_append`. The disk is
//! the temp directory's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_journal::wire::*;
use anycastd_journal::{Journal, Options};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

fn transition() -> Event {
    Event::Transition(Transition {
        service: "dns".into(),
        from: State::Healthy,
        to: State::Unhealthy,
        cause: Cause::Verdict {
            healthy: false,
            checks: vec![CheckResult {
                check: "dns".into(),
                observation: Observation::Fail("HTTP 500".into()),
            }],
        },
        healthy_streak: 0,
        unhealthy_streak: 1,
        change: Change::Withdraw,
        prefixes: vec![PrefixRef::frr("/usr/bin/vtysh", None, "203.0.113.53/32")],
    })
}

fn appends(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
    let event = transition();
    c.bench_function(
        "journal: durable append of one transition (append + fsync)",
        |b| {
            b.iter(|| {
                journal.append(1, std::slice::from_ref(&event)).unwrap();
                journal.flush().unwrap();
            })
        },
    );
    let batch: Vec<Event> = (0..100).map(|_| transition()).collect();
    c.bench_function(
        "journal: 100 transitions under one flush (group commit)",
        |b| {
            b.iter_batched(
                || batch.clone(),
                |batch| {
                    journal.append(1, &batch).unwrap();
                    journal.flush().unwrap();
                },
                BatchSize::SmallInput,
            )
        },
    );
    c.bench_function("journal: append without flush", |b| {
        b.iter(|| journal.append(1, std::slice::from_ref(&event)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = appends
}
criterion_main!(benches);
