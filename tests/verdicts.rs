//! How the real daemon forms verdicts while a check has no result: a failure that the pending
//! check cannot outweigh withdraws at once, without waiting for that check's pending timeout;
//! a pass waits for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd_journal::wire::{self, Event};
use std::path::Path;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

/// The journal's records of `dns`, through `history --json` (none while it cannot answer).
fn events(config: &Path) -> Vec<Event> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "dns", "--json", "-c"])
        .arg(config)
        .output()
        .unwrap();
    if out.status.code() != Some(0) {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| serde_json::from_value(v["record"].clone()).ok())
        .collect()
}

/// The transitions of `dns` (from, to, the verdict's checks).
fn transitions(config: &Path) -> Vec<(wire::State, wire::State, Vec<wire::CheckResult>)> {
    events(config)
        .into_iter()
        .filter_map(|e| match e {
            Event::Transition(t) => match t.cause {
                wire::Cause::Verdict { checks, .. } => Some((t.from, t.to, checks)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_withdraws_while_another_check_is_pending_and_a_pass_waits_for_it() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("local.down");
    // A Cabourotte check (pending timeout: the default, 10 s) and a local exec check.
    let local = format!(
        "checks.exec = [{{ name = \"local\", command = \"/bin/sh\", args = [\"-c\", \"if [ -e {} ]; then echo down >&2; exit 1; fi\"], interval = \"200ms\" }}]\n",
        flag.display()
    );
    let config = one_service_config(
        dir.path(),
        &format!(
            "[{{ name = \"dns\", url = \"{}\", interval = \"200ms\" }}]",
            emulator.url()
        ),
        OneService {
            service: &local,
            ..OneService::default()
        },
    );
    let daemon = Daemon::start(&config, &dir.path().join("log"));
    // The journal answers once the daemon runs; healthy once both checks passed.
    daemon.wait_log("is now considered healthy");
    wait_for("healthy in the journal", || {
        transitions(&config)
            .iter()
            .any(|(_, to, _)| *to == wire::State::Healthy)
    });

    // Cabourotte loses its result ("result not found": pending), then the local check fails:
    // the service is withdrawn by that failure, the Cabourotte check still pending in the
    // verdict (after its pending timeout it would read "no result within 10000 ms").
    emulator.set("dns", Behaviour::NotFound);
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(&flag, "").unwrap();
    wait_for("unhealthy", || {
        transitions(&config)
            .iter()
            .any(|(_, to, _)| *to == wire::State::Unhealthy)
    });
    let (from, _, checks) = transitions(&config)
        .into_iter()
        .find(|(_, to, _)| *to == wire::State::Unhealthy)
        .unwrap();
    assert_eq!(from, wire::State::Healthy);
    let of = |name: &str| {
        checks
            .iter()
            .find(|c| c.check == name)
            .map(|c| c.observation.clone())
    };
    assert_eq!(of("dns"), Some(wire::Observation::Pending));
    assert_eq!(
        of("local"),
        Some(wire::Observation::Fail("exit 1: down".into()))
    );

    // The local check passes again: no verdict while Cabourotte has no result (a healthy one
    // needs every check), so the service stays withdrawn until Cabourotte answers.
    std::fs::remove_file(&flag).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        transitions(&config).last().map(|(_, to, _)| to.clone()),
        Some(wire::State::Unhealthy)
    );
    emulator.set("dns", Behaviour::Pass);
    wait_for("healthy again", || {
        transitions(&config).last().map(|(_, to, _)| to.clone()) == Some(wire::State::Healthy)
    });
}
