//! Graded announcements through the whole daemon, FRR played by
//! `tests/support/fake_vtysh.py`: a stop with a drain grace keeps the service announced until
//! the grace ends, then withdraws it (a service without a grace is withdrawn at once); a second
//! SIGTERM in the grace withdraws at once; `stop --grace 0` overrides a configured grace; the
//! journal says the level and the grace's end. What the routing daemons announce with the
//! GRACEFUL_SHUTDOWN community is the backends' tests' (tests/frr.rs, tests/bird.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::Daemon;
use support::fake_frr::{fake_frr_config, fake_vtysh, networks};

const DNS: &str = "default:203.0.113.53/32";
const NTP: &str = "123:203.0.113.123/32";

/// The fake-FRR config with `drain_grace = GRACE` for service dns (ntp has none).
fn config_with_grace(dir: &Path, url: &str, grace: &str) -> std::path::PathBuf {
    let config = fake_frr_config(dir, url, &fake_vtysh(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[services.dns]\n",
        &format!("[services.dns]\ndrain_grace = {grace:?}\n"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn started(grace: &str) -> (tempfile::TempDir, Emulator, Daemon, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_grace(dir.path(), &emulator.url(), grace);
    let daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for(&daemon, "both announced", || {
        let n = networks(dir.path());
        n.contains(&DNS.to_owned()) && n.contains(&NTP.to_owned())
    });
    (dir, emulator, daemon, rt)
}

fn wait_for(daemon: &Daemon, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn history(dir: &Path, service: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", service, "-c"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sigterm_keeps_a_service_with_a_grace_announced_until_the_grace_ends_and_withdraws_the_others_at_once(
) {
    let (dir, _emulator, mut daemon, _rt) = started("3s");
    let signalled = Instant::now();
    daemon.signal(Signal::SIGTERM);
    // ntp has no grace: withdrawn at once; dns stays announced meanwhile.
    wait_for(&daemon, "ntp withdrawn", || {
        !networks(dir.path()).contains(&NTP.to_owned())
    });
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "dns withdrawn before its grace ended"
    );
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "the stop did not wait for the grace"
    );
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    let text = history(dir.path(), "dns");
    assert!(
        text.contains("announced graceful shutdown until") && text.contains("community 65535:0"),
        "{text}"
    );
    assert!(text.contains("the drain's grace is over"), "{text}");
    // A service without a grace journals as before graded announcements.
    assert!(!history(dir.path(), "ntp").contains("graceful"));
}

#[test]
fn a_second_sigterm_in_the_grace_withdraws_at_once() {
    let (dir, _emulator, mut daemon, _rt) = started("1h");
    daemon.signal(Signal::SIGTERM);
    wait_for(&daemon, "ntp withdrawn", || {
        !networks(dir.path()).contains(&NTP.to_owned())
    });
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "in its grace"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    assert!(history(dir.path(), "dns").contains("the drain's grace is over"));
}

#[test]
fn stop_with_grace_zero_while_a_stop_waits_out_its_grace_withdraws_at_once() {
    let (dir, _emulator, mut daemon, _rt) = started("1h");
    daemon.signal(Signal::SIGTERM);
    wait_for(&daemon, "ntp withdrawn", || {
        !networks(dir.path()).contains(&NTP.to_owned())
    });
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "in its grace"
    );
    // The second stop ends the grace and is answered with the stop's outcome.
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["stop", "--grace", "0", "-c"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", daemon.log_text());
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    assert!(history(dir.path(), "dns").contains("the drain's grace is over"));
}

#[test]
fn stop_with_grace_zero_overrides_a_configured_grace() {
    let (dir, _emulator, mut daemon, _rt) = started("1h");
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["stop", "--grace", "0", "-c"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", daemon.log_text());
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    let text = history(dir.path(), "dns");
    assert!(!text.contains("graceful"), "{text}");
}

#[test]
fn drain_with_a_grace_keeps_the_service_announced_until_the_grace_ends() {
    let (dir, _emulator, mut daemon, _rt) = started("0");
    let drained = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args([
            "drain",
            "dns",
            "--reason",
            "maintenance",
            "--grace",
            "2s",
            "-c",
        ])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // It says what the routing daemon was asked and showed: announced in its grace, not
    // withdrawn.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("announced with GRACEFUL_SHUTDOWN (community 65535:0) until ")
            && said.contains("prefix(es) announced")
            && !said.contains("withdrawn;"),
        "{said}"
    );
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "in its grace"
    );
    wait_for(&daemon, "dns withdrawn", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    assert!(drained.elapsed() >= Duration::from_secs(2));
    assert!(
        networks(dir.path()).contains(&NTP.to_owned()),
        "ntp untouched"
    );
    // The log says the grace, not the original's "denouncing" at its start.
    assert!(
        daemon
            .log_text()
            .contains("is draining, announcing related prefixes with GRACEFUL_SHUTDOWN (community 65535:0) until "),
        "{}",
        daemon.log_text()
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

#[test]
fn sigkill_in_a_drain_grace_and_a_restart_keep_the_grace_to_its_journaled_end() {
    let (dir, _emulator, mut daemon, _rt) = started("0");
    let drained = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args([
            "drain",
            "dns",
            "--reason",
            "maintenance",
            "--grace",
            "6s",
            "-c",
        ])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(30));
    assert!(networks(dir.path()).contains(&DNS.to_owned()));
    let mut daemon = Daemon::start(&dir.path().join("config.toml"), &dir.path().join("log2"));
    daemon.wait_log("is kept announced");
    // Restored in its grace: still announced, not withdrawn at the start.
    assert!(
        drained.elapsed() < Duration::from_secs(6),
        "the machine was too slow for this test"
    );
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "withdrawn at the restart, before the grace's end\n{}",
        daemon.log_text()
    );
    wait_for(&daemon, "dns withdrawn at the grace's end", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    assert!(
        drained.elapsed() >= Duration::from_secs(6),
        "withdrawn before the journaled end"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    let text = history(dir.path(), "dns");
    assert!(text.contains("the drain's grace is over"), "{text}");
}
