//! `fast_interval` against the real daemon: a check polled every second that starts failing
//! is polled every 100 ms while the fall of 3 is being confirmed, so the service is withdrawn
//! about 200 ms after the first failure instead of 2 s; once withdrawn, polls go back to one
//! a second. The oracle is the emulator's own log of when it was asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};
use support::oracle::now_ms;

/// Passes for the first requests, then failures.
const PASSES: usize = 3;

#[test]
fn a_fall_is_confirmed_at_the_fast_interval_then_polls_slow_down() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let served: Arc<Mutex<Vec<i64>>> = Arc::default();
    let log = served.clone();
    let lookup: support::cabourotte::Lookup = Arc::new(move |name: &str| {
        if name != "dns" {
            return Behaviour::NotFound;
        }
        let mut log = log.lock().unwrap();
        log.push(now_ms());
        if log.len() <= PASSES {
            Behaviour::Pass
        } else {
            Behaviour::Fail("resolver down".into())
        }
    });
    let emulator = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Emulator::serve(listener, Generation::V2, Some(lookup))
    });
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            "[{{ name = \"dns\", url = \"{}\", interval = \"1s\" }}]",
            emulator.url()
        ),
        OneService {
            service: "fall = 3\nfast_interval = \"100ms\"\n",
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    // The passes, three failures, then three more slow polls.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while served.lock().unwrap().len() < PASSES + 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    let served = served.lock().unwrap().clone();
    let gaps: Vec<i64> = served.windows(2).map(|w| w[1] - w[0]).collect();
    // Healthy with nothing against it: a second apart (the first poll is at once, the
    // second on the first grid point a second later).
    for gap in &gaps[1..PASSES - 1] {
        assert!((900..=1100).contains(gap), "slow polls: {gaps:?}");
    }
    // The first failure starts the count: the next two polls 100 ms apart.
    let confirming = &gaps[PASSES..PASSES + 2];
    for gap in confirming {
        assert!(
            (50..=250).contains(gap),
            "fast polls while confirming: {gaps:?}"
        );
    }
    // Withdrawn at the third failure: a second apart again.
    for gap in &gaps[PASSES + 2..PASSES + 5] {
        assert!(
            (700..=1100).contains(gap),
            "slow polls once withdrawn: {gaps:?}"
        );
    }
    // The journal: withdrawn at the third failure, well inside one slow interval of the first.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["replay", "dns", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let report: anycastd::audit::replay::Report = serde_json::from_slice(&out.stdout).unwrap();
    let withdrawal = report
        .recorded
        .timeline
        .iter()
        .find(|s| s.from == "healthy" && s.to == "unhealthy")
        .expect("withdrawn");
    let first_failure = served[PASSES];
    let third_failure = served[PASSES + 2];
    assert!(
        (withdrawal.at_ms - third_failure).abs() <= 60,
        "withdrawn at the third failure: {} vs {third_failure}",
        withdrawal.at_ms
    );
    assert!(withdrawal.at_ms - first_failure < 1000, "{gaps:?}");
}
