//! systemd integration: the shipped unit verifies with systemd-analyze, and a daemon started
//! under a NOTIFY_SOCKET says READY=1 only after its start-up reconciliation is journaled,
//! then STATUS= as services change, and WATCHDOG=1 when asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

#[test]
fn the_shipped_unit_file_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        support::skip::skip("systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/anycastd.service"),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "KillMode=mixed",
        "ExecReload=/usr/local/bin/anycastd reload",
        "ExecStartPre=/usr/local/bin/anycastd check-config",
        "StateDirectory=anycastd",
        "After=network-online.target frr.service",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anycastd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/anycastd", env!("CARGO_BIN_EXE_anycastd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn recv(socket: &UnixDatagram, deadline: Instant) -> Option<String> {
    let mut buf = [0u8; 4096];
    socket
        .set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
    socket
        .recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_comes_after_reconciliation_then_status_and_watchdog_follow_the_services() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService::default(),
    );
    let notify_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("log"),
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = recv(&socket, deadline).expect("a notification");
    assert!(ready.starts_with("READY=1\nSTATUS="), "{ready}");
    // READY=1 came after the reconciliation was journaled.
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"kind\":\"reconciled\""));

    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.contains("STATUS=1 healthy, 0 unhealthy, 0 drained"))
    {
        seen.push(recv(&socket, deadline).unwrap_or_else(|| panic!("{seen:?}")));
    }
    emulator.set("dns", Behaviour::Status(500));
    while !seen
        .iter()
        .any(|m| m.contains("STATUS=0 healthy, 1 unhealthy, 0 drained"))
    {
        seen.push(recv(&socket, deadline).unwrap_or_else(|| panic!("{seen:?}")));
    }
    assert!(seen.iter().any(|m| m == "WATCHDOG=1"), "{seen:?}");
    daemon.signal(Signal::SIGTERM);
    while !seen.iter().any(|m| m.starts_with("STOPPING=1")) {
        seen.push(recv(&socket, deadline).unwrap_or_else(|| panic!("{seen:?}")));
    }
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}
