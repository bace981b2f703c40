//! Operating the daemon against a real FRR and a real BGP peer: drain and undrain (with an
//! expiry, across SIGKILL and SIGTERM restarts), and their bad inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Entry, Journal, Options};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{example_config, Daemon};
use support::testbed::{Peer, Testbed, ALL_FOUR, NTP_ONLY};

const EXIT: Duration = Duration::from_secs(30);

fn healthy_emulator(rt: &tokio::runtime::Runtime) -> Emulator {
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    for check in ["dns", "ntp_v4", "ntp_v6"] {
        emulator.set(check, Behaviour::Pass);
    }
    emulator
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

fn events(dir: &Path) -> Vec<Event> {
    let journal = Journal::open(&dir.join("journal"), &Options::default()).unwrap();
    journal
        .entries_from(0)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => r.event,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn wait_polls(emulator: &Emulator, check: &str, n: u64) {
    let before = emulator.requests(check);
    while emulator.requests(check) < before + n {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn drain_withdraws_while_checks_pass_and_undrain_announces_again() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);

    let (code, out, err) = anycastd(&["drain", "dns", "--reason", "kernel upgrade"], &config);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dns: drained"), "{out}");
    tb.wait_peer(&NTP_ONLY);
    wait_polls(&emulator, "dns", 5);
    assert_eq!(
        tb.peer_routes().len(),
        2,
        "still drained while the checks pass"
    );
    let (_, status, _) = anycastd(&["status"], &config);
    assert!(
        status.contains("dns: draining (operator uid 0: kernel upgrade)"),
        "{status}"
    );

    let (code, out, _) = anycastd(&["undrain", "dns"], &config);
    assert_eq!(code, 0);
    assert!(out.contains("undrained: now healthy"), "{out}");
    tb.wait_peer(&ALL_FOUR);
    // Undraining a service that is not drained is fine, with a note.
    let (code, out, _) = anycastd(&["undrain", "ntp"], &config);
    assert_eq!(code, 0);
    assert!(out.contains("not drained"), "{out}");
    // Bad input.
    let (code, _, err) = anycastd(&["drain", "nope", "--reason", "x"], &config);
    assert_eq!(code, 2);
    assert!(err.contains("known services: dns, ntp"), "{err}");
    let (code, _, _) = anycastd(&["drain", "dns", "--reason", "x", "--for", "soon"], &config);
    assert_eq!(code, 2);
    let (code, _, _) = anycastd(&["drain", "--reason", "x"], &config);
    assert_eq!(code, 2, "a service or --all is required");

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    let (code, _, _) = anycastd(&["drain", "--all", "--reason", "x"], &config);
    assert_eq!(code, 69, "no daemon");
    let (_, history, _) = anycastd(&["history", "dns"], &config);
    assert!(
        history.contains("operator: drain dns (kernel upgrade) (uid 0"),
        "{history}"
    );
    assert!(
        history.contains("healthy -> draining (operator uid 0: kernel upgrade): withdraw"),
        "{history}"
    );
    assert!(
        history.contains("draining (operator uid 0: kernel upgrade) -> healthy: announce"),
        "{history}"
    );
}

#[test]
fn a_drain_for_three_seconds_ends_by_itself() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    let (code, _, err) = anycastd(
        &["drain", "--all", "--reason", "short", "--for", "3s"],
        &config,
    );
    assert_eq!(code, 0, "{err}");
    tb.wait_peer(&[]);
    tb.wait_peer(&ALL_FOUR);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    let expired = events(dir.path())
        .iter()
        .filter(|e| matches!(e, Event::Transition(t) if t.cause == wire::Cause::DrainExpired && t.to == wire::State::Healthy))
        .count();
    assert_eq!(expired, 2, "both services' drains expired, journaled");
}

#[test]
fn an_operator_drain_survives_sigkill_and_a_clean_restart() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    tb.wait_peer(&ALL_FOUR);
    assert_eq!(
        anycastd(&["drain", "dns", "--reason", "rack move"], &config).0,
        0
    );
    tb.wait_peer(&NTP_ONLY);
    first.signal(Signal::SIGKILL);
    first.wait(EXIT);

    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    wait_polls(&emulator, "dns", 5);
    tb.wait_peer(&NTP_ONLY);
    let (_, status, _) = anycastd(&["status"], &config);
    assert!(
        status.contains("dns: draining (operator uid 0: rack move)"),
        "{status}"
    );
    // A clean stop does not end the drain either (and the shutdown itself leaves no drain).
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(EXIT), 0);
    tb.wait_peer(&[]);
    let mut third = Daemon::start(&config, &dir.path().join("log3"));
    tb.wait_peer(&NTP_ONLY);
    wait_polls(&emulator, "dns", 5);
    tb.wait_peer(&NTP_ONLY);
    assert_eq!(anycastd(&["undrain", "dns"], &config).0, 0);
    tb.wait_peer(&ALL_FOUR);
    third.signal(Signal::SIGTERM);
    assert_eq!(third.wait(EXIT), 0);
}
