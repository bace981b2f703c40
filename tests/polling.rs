//! The poll loop asks Cabourotte at most N+1 times per check in N intervals, whatever the
//! answers are: a failure waits for the next interval (no hot retry loop). The first poll is
//! immediate and the next ones fall on a grid shared by every check of that interval, the
//! first of them at least an interval later, so N intervals hold at most N polls; the API
//! generation probe costs one extra request once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::checks::{http_client, CabourotteCheck};
use anycastd::driver::poll_check;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};

const INTERVAL: Duration = Duration::from_millis(100);
const INTERVALS: u32 = 10;

async fn requests_in_ten_intervals(generation: Generation, behaviour: Behaviour) -> (u64, usize) {
    let emulator = Emulator::start(generation).await;
    emulator.set("c", behaviour);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let check = CabourotteCheck::new(&emulator.url(), "c", Duration::from_millis(50), None);
    let poller = tokio::spawn(poll_check(check, http_client().unwrap(), INTERVAL, 0, tx));
    // Just short of N intervals: ticks at 0, 1, ..., N-1 intervals.
    tokio::time::sleep(INTERVAL * INTERVALS - Duration::from_millis(30)).await;
    poller.abort();
    let mut observations = 0;
    while rx.try_recv().is_ok() {
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
