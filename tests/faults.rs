//! Faults of the environment: vtysh hanging (100 times: no zombie, no fd leak), vtysh
//! printing garbage or a huge output, and SIGTERM arriving while an announcement is under
//! way. FRR is played by `tests/support/fake_vtysh.py`, which keeps `network` lines in a
//! file the way FRR keeps them in its running config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::routing::frr::control::{Vtysh, VtyshError};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::Daemon;
use support::fake_frr::{fake_frr_config, fake_vtysh, networks};

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid ...: comm may contain spaces; split after the ')'.
                let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields.first() == Some(&"Z") && fields.get(1) == Some(&me.as_str())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_hanging_vtysh_calls_leave_no_zombie_and_no_open_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "vtysh", "sleep 30 &\nsleep 30");
    let vtysh = Vtysh {
        path,
        args: vec![],
        timeout: Duration::from_millis(50),
    };
    let _ = vtysh.run(&["show version".into()]).await;
    let fds_before = open_fds();
    for _ in 0..100 {
        let result = vtysh.run(&["show running-config bgpd".into()]).await;
        assert!(
            matches!(result, Err(VtyshError::Timeout { .. })),
            "{result:?}"
        );
    }
    // tokio reaps killed children in the background; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !zombie_children().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Another child exit wakes tokio's reaper.
        let _ = tokio::process::Command::new("true").status().await;
    }
    assert_eq!(zombie_children(), Vec::<i32>::new());
    assert!(
        open_fds() <= fds_before + 2,
        "fds: {fds_before} before, {} after",
        open_fds()
    );
}

#[tokio::test]
async fn a_huge_vtysh_output_is_cut_off_and_fails_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        "vtysh",
        "head -c 200000000 /dev/zero | tr '\\\\0' x",
    );
    let vtysh = Vtysh {
        path,
        args: vec![],
        timeout: Duration::from_secs(30),
    };
    let started = Instant::now();
    let err = vtysh
        .run(&["show running-config bgpd".into()])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("output larger than 16777216 bytes"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cut off, not waited out"
    );
}

#[test]
fn sigterm_during_an_announcement_still_ends_with_everything_withdrawn() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.log");
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("log"),
        &[
            ("FAKE_VTYSH_DELAY", "1"),
            ("FAKE_VTYSH_LOG", calls.to_str().unwrap()),
        ],
    );
    // Wait until the announcement is being written (a configure call has started).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&calls)
        .unwrap_or_default()
        .contains("network 203.0.113.53/32")
    {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    assert_eq!(
        networks(dir.path()),
        Vec::<String>::new(),
        "{}",
        std::fs::read_to_string(&calls).unwrap()
    );
    let log = std::fs::read_to_string(&calls).unwrap();
    let announce = log.find("| network 203.0.113.53/32").unwrap();
    let withdraw = log
        .find("no network 203.0.113.53/32")
        .expect("the withdrawal was sent");
    assert!(announce < withdraw);
}

#[test]
fn a_vtysh_printing_garbage_is_an_error_per_prefix_and_the_daemon_runs_on() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let garbage = script(dir.path(), "vtysh", "head -c 20000 /dev/urandom");
    let config = fake_frr_config(dir.path(), &emulator.url(), &garbage, "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("no default BGP instance in FRR");
    daemon.wait_log("no BGP instance for VRF 123");
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.running());
    daemon.signal(Signal::SIGTERM);
    // Nothing can be in an FRR without instances: the withdrawals are verified as such.
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
}
