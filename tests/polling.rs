//! The poll loop asks Cabourotte at most N+1 times per check in N intervals, whatever the
//! answers are: a failure waits for the next interval (no hot retry loop). The first poll is
//! immediate and the next ones fall on a grid shared by every check of that interval, the
//! first of them at least an interval later, so N intervals hold at most N polls; the API
//! generation probe costs one extra request once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::checks::cabourotte::{http_client, CabourotteCheck, MAX_CONNECTIONS_PER_SERVER};
use anycastd::checks::scheduler::Polling;
use anycastd_fsm::Observation;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};

const INTERVAL: Duration = Duration::from_millis(100);
const INTERVALS: u32 = 10;

async fn requests_in_ten_intervals(generation: Generation, behaviour: Behaviour) -> (u64, usize) {
    let emulator = Emulator::start(generation).await;
    emulator.set("c", behaviour);
    let (tx, mut rx) = anycastd::checks::scheduler::results();
    let client = http_client().unwrap();
    let check = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "c",
        Duration::from_millis(50),
        None,
    );
    let polling = Polling::new();
    let watch = polling.watch(Box::new(check), INTERVAL, 0, tx);
    // Just short of N intervals: ticks at 0, 1, ..., N-1 intervals.
    tokio::time::sleep(INTERVAL * INTERVALS - Duration::from_millis(30)).await;
    drop(watch);
    let mut observations = 0;
    while rx.try_recv().is_some() {
        observations += 1;
    }
    (emulator.requests("c"), observations)
}

#[tokio::test]
async fn at_most_n_plus_one_requests_in_n_intervals_for_every_kind_of_answer() {
    let cases = [
        (Generation::V2, Behaviour::Pass),
        (Generation::V2, Behaviour::Status(500)),
        (Generation::V2, Behaviour::Malformed),
        (Generation::V2, Behaviour::NotFound),
        (Generation::V2, Behaviour::Hang),
        (Generation::V1, Behaviour::Pass),
        (Generation::V1, Behaviour::Fail("down".into())),
    ];
    for (generation, behaviour) in cases {
        let (requests, observations) =
            requests_in_ten_intervals(generation, behaviour.clone()).await;
        assert!(
            requests <= u64::from(INTERVALS) + 1,
            "{generation:?} {behaviour:?}: {requests} requests in {INTERVALS} intervals"
        );
        assert!(
            observations >= 1 && observations <= INTERVALS as usize,
            "{behaviour:?}: {observations} observations"
        );
    }
}

#[tokio::test]
async fn every_check_of_a_server_is_polled_each_interval_over_a_bounded_pool() {
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let polling = Polling::new();
    let (tx, mut rx) = anycastd::checks::scheduler::results();
    let watches: Vec<_> = (0..100)
        .map(|i| {
            let name = format!("c{i}");
            emulator.set(&name, Behaviour::Pass);
            let check = CabourotteCheck::new(
                &client,
                &emulator.url(),
                &name,
                Duration::from_secs(1),
                None,
            );
            polling.watch(Box::new(check), INTERVAL, i, tx.clone())
        })
        .collect();
    tokio::time::sleep(INTERVAL * INTERVALS).await;
    let mut seen = vec![0u32; 100];
    while let Some(polled) = rx.try_recv() {
        assert_eq!(
            polled.observation,
            Observation::Pass,
            "check {}",
            polled.check
        );
        seen[polled.check] += 1;
    }
    for (i, n) in seen.iter().enumerate() {
        // N intervals from the first poll hold N or N+1 polls; a loaded machine may lose one
        // or two rounds' worth, never most of them.
        assert!(
            (INTERVALS - 3..=INTERVALS + 1).contains(n),
            "check {i}: {n} results in {INTERVALS} intervals"
        );
        assert!(emulator.requests(&format!("c{i}")) <= u64::from(INTERVALS) + 1);
    }
    assert!(
        emulator.connections() <= MAX_CONNECTIONS_PER_SERVER as u64,
        "{} connections",
        emulator.connections()
    );
    // Dropping the watches stops the polls.
    drop(watches);
    tokio::time::sleep(INTERVAL).await;
    let before: u64 = (0..100).map(|i| emulator.requests(&format!("c{i}"))).sum();
    tokio::time::sleep(INTERVAL * 3).await;
    let after: u64 = (0..100).map(|i| emulator.requests(&format!("c{i}"))).sum();
    assert_eq!(before, after, "no poll after the watches are dropped");
}

#[tokio::test]
async fn a_check_queued_behind_a_silent_server_fails_after_its_timeout_without_a_request() {
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let polling = Polling::new();
    let (tx, mut rx) = anycastd::checks::scheduler::results();
    // Every connection slot is taken by a request that will not be answered.
    let mut watches: Vec<_> = (0..MAX_CONNECTIONS_PER_SERVER)
        .map(|i| {
            let name = format!("hang{i}");
            emulator.set(&name, Behaviour::Hang);
            let check = CabourotteCheck::new(
                &client,
                &emulator.url(),
                &name,
                Duration::from_secs(3),
                None,
            );
            polling.watch(
                Box::new(check),
                Duration::from_secs(10),
                100 + i,
                tx.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    emulator.set("dns", Behaviour::Pass);
    let dns = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "dns",
        Duration::from_millis(200),
        None,
    );
    let started = std::time::Instant::now();
    watches.push(polling.watch(Box::new(dns), Duration::from_secs(10), 0, tx.clone()));
    let polled = loop {
        let polled = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a result within 10 s");
        if polled.check == 0 {
            break polled;
        }
    };
    match &polled.observation {
        Observation::Fail(reason) => assert!(
            reason.contains("already in flight"),
            "unexpected reason: {reason}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it failed after its own timeout, not the hanging requests' ({:?})",
        started.elapsed()
    );
    assert_eq!(emulator.requests("dns"), 0, "it never reached the server");
}
