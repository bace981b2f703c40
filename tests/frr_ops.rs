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
use support::monitor::Monitor;
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

#[test]
fn reloads_add_change_and_remove_services_without_touching_the_others() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let full = std::fs::read_to_string(&config).unwrap();
    let dns_only = full[..full.find("[services.ntp]").unwrap()].to_owned();
    std::fs::write(&config, &dns_only).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&support::testbed::ALL_FOUR[..2]);
    let monitor = Monitor::start(&tb, dir.path());

    // Adding ntp announces only ntp.
    std::fs::write(&config, &full).unwrap();
    let (code, out, err) = anycastd(&["reload"], &config);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("1 added, 0 removed, 0 changed, 1 unchanged"),
        "{out}"
    );
    tb.wait_peer(&ALL_FOUR);

    // Changing only a check interval causes no withdrawal.
    let slower = full.replacen("interval = \"200ms\"", "interval = \"300ms\"", 1);
    std::fs::write(&config, &slower).unwrap();
    let (code, out, _) = anycastd(&["reload"], &config);
    assert_eq!(code, 0);
    assert!(out.contains("1 changed"), "{out}");
    // The answer says what changed.
    assert!(
        out.contains("; dns: check dns: interval 0.2s -> 0.3s"),
        "{out}"
    );
    // So does history, once the driver applied it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, history, _) = anycastd(&["history", "dns"], &config);
        if history.contains("reconfigured by the reload: rise 1, fall 1, 1 check(s), 2 prefix(es) (check dns: interval 0.2s -> 0.3s, timeout 0.2s -> 0.3s)") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{history}");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_polls(&emulator, "dns", 5);

    // An invalid config changes nothing: `reload` refuses it (exit 65, every error), and so
    // does the daemon on SIGHUP, which logs the errors and runs on.
    std::fs::write(
        &config,
        slower.replace("interval = \"300ms\"", "interval = 0"),
    )
    .unwrap();
    let (code, _, err) = anycastd(&["reload"], &config);
    assert_eq!(code, 65);
    assert!(
        err.contains("services.dns.checks.cabourotte[0].interval: must be greater than 0"),
        "{err}"
    );
    daemon.signal(Signal::SIGHUP);
    daemon.wait_log("reload rejected");
    assert!(daemon.running());
    // Keys that cannot change live are rejected.
    std::fs::write(
        &config,
        slower.replace("vtysh_timeout = \"5s\"", "vtysh_timeout = \"6s\""),
    )
    .unwrap();
    let (code, _, err) = anycastd(&["reload"], &config);
    assert_eq!(code, 65);
    assert!(
        err.contains("[frrouting] changed; restart required"),
        "{err}"
    );
    tb.wait_peer(&ALL_FOUR);
    assert_eq!(
        monitor.withdrawals(),
        Vec::<String>::new(),
        "nothing was withdrawn so far"
    );

    // A changed prefix list withdraws only the difference.
    let one_prefix = slower.replace(
        "prefixes.frrouting = [\"2001:db8::b19:bad:53\", \"203.0.113.53\"]",
        "prefixes.frrouting = [\"203.0.113.53\"]",
    );
    assert_ne!(one_prefix, slower);
    std::fs::write(&config, &one_prefix).unwrap();
    assert_eq!(anycastd(&["reload"], &config).0, 0);
    tb.wait_peer(&[
        "default:203.0.113.53/32",
        "123:203.0.113.123/32",
        "123:2001:db8::123:7e11:713e/128",
    ]);
    assert_eq!(monitor.withdrawals(), ["2001:db8::b19:bad:53/128"]);
    std::fs::write(&config, &slower).unwrap();
    assert_eq!(anycastd(&["reload"], &config).0, 0);
    tb.wait_peer(&ALL_FOUR);

    // SIGHUP with ntp removed withdraws only ntp.
    std::fs::write(&config, &dns_only).unwrap();
    daemon.signal(Signal::SIGHUP);
    tb.wait_peer(&support::testbed::ALL_FOUR[..2]);
    let withdrawn = monitor.withdrawals();
    assert_eq!(
        withdrawn,
        [
            "2001:db8::123:7e11:713e/128",
            "2001:db8::b19:bad:53/128",
            "203.0.113.123/32"
        ]
    );
    assert!(daemon.running());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);

    let events = events(dir.path());
    let reloads: Vec<&wire::Reloaded> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reloaded(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(reloads.len(), 5, "{reloads:?}");
    assert_eq!(reloads[0].added, ["ntp"]);
    assert_eq!(reloads[1].changed, ["dns"]);
    assert_eq!(reloads[2].changed, ["dns"]);
    assert_eq!(reloads[4].removed, ["ntp"]);
    assert!(events.iter().any(|e| matches!(e, Event::Transition(t) if t.service == "ntp" && t.to == wire::State::Draining(wire::DrainCause::Removed))));
    // dns never left Healthy until the shutdown.
    let dns: Vec<&wire::State> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transition(t) if t.service == "dns" => Some(&t.to),
            _ => None,
        })
        .collect();
    assert_eq!(
        dns,
        [
            &wire::State::Healthy,
            &wire::State::Draining(wire::DrainCause::Shutdown)
        ]
    );
}

#[test]
fn a_flapping_service_is_suppressed_withdrawn_at_the_peer_and_returns_after_the_penalty_decays() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    // dns: each withdrawal adds 1000, suppressed above 1500, reused below 750, half-life 4 s.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[services.dns]\n",
        "[services.dns]\ndamping = { half_life = \"4s\", penalty = 1000, suppress = 1500, reuse = 750 }\n",
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    // Two flaps in quick succession: penalty ~1900 > 1500.
    for _ in 0..2 {
        emulator.set("dns", Behaviour::Fail("flap".into()));
        tb.wait_peer(&NTP_ONLY);
        emulator.set("dns", Behaviour::Pass);
        daemon.wait_log("Cabourotte health check \\\"dns\\\" passed.");
        std::thread::sleep(Duration::from_millis(300));
    }
    daemon.wait_log("suppressed by flap damping");
    // Checks pass, yet dns stays withdrawn at the peer while suppressed.
    wait_polls(&emulator, "dns", 10);
    assert_eq!(
        tb.peer_routes().len(),
        2,
        "dns must stay withdrawn while suppressed"
    );
    let (_, status, _) = anycastd(&["status"], &config);
    assert!(
        status.contains("dns: unhealthy, suppressed by flap damping"),
        "{status}"
    );
    // The suppression survives a crash-restart.
    daemon.signal(Signal::SIGKILL);
    daemon.wait(EXIT);
    let mut daemon = Daemon::start(&config, &dir.path().join("log2"));
    daemon.wait_log("stays suppressed by flap damping after the restart");
    wait_polls(&emulator, "dns", 5);
    assert_eq!(
        tb.peer_routes().len(),
        2,
        "still withdrawn after the restart"
    );
    // The penalty decays below 750 within ~1.4 half-lives; then dns comes back by itself.
    tb.wait_peer(&ALL_FOUR);
    daemon.wait_log("is no longer suppressed by flap damping");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    let (_, history, _) = anycastd(&["history", "dns"], &config);
    assert!(history.contains("SUPPRESSED since"), "{history}");
    assert!(
        history.contains("flap damping no longer suppresses it, checks pass"),
        "{history}"
    );
    // Replay reproduces the damping bit for bit.
    let (code, out, err) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (_, all, _) = anycastd(&["history", "dns"], &config);
    assert_eq!(
        report["divergences"].as_array().unwrap().len(),
        0,
        "{report:#}\n{all}"
    );
    assert_eq!(report["gaps"].as_array().unwrap().len(), 1, "the SIGKILL");
    assert_eq!(report["recorded"]["summary"]["flaps"], 2);
}
