//! The journal never decides whether prefixes are announced: an unreadable journal is moved
//! aside and a new one started; an unusable journal path leaves the daemon running without
//! an audit trail; the history of a stopped daemon is read directly from the journal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd_journal::wire::Event;
use anycastd_journal::{Entry, Journal, Options};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;
use support::cabourotte::Behaviour;
use support::daemon::{one_service_config, Daemon, OneService};

fn write_config(dir: &Path, journal: &Path) -> std::path::PathBuf {
    one_service_config(
        dir,
        r#"[{ name = "dns", url = "http://127.0.0.1:9", interval = "100ms" }]"#,
        OneService {
            journal: Some(journal),
            ..OneService::default()
        },
    )
}

#[test]
fn an_unreadable_journal_is_moved_aside_and_a_new_one_records_why() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir_all(journal.join("db")).unwrap();
    std::fs::write(journal.join("db/conf"), "not a sled config\n").unwrap();
    let config = write_config(dir.path(), &journal);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("THE JOURNAL COULD NOT BE READ");
    daemon.wait_log("Cabourotte health check");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    let moved: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal.corrupt-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&moved[0]).join("db/conf")).unwrap(),
        "not a sled config\n"
    );
    let journal = Journal::open(&journal, &Options::default()).unwrap();
    let first = journal.entries_from(0).next().unwrap().unwrap();
    match first {
        Entry::Record(r) => match r.event {
            Event::JournalReset(reset) => assert!(reset.moved_to.ends_with(&moved[0])),
            other => panic!("first record is {other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_journal_path_that_is_a_file_leaves_the_daemon_running_without_an_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::write(&journal, "a file, not a directory").unwrap();
    let config = write_config(dir.path(), &journal);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("journal unavailable: running without an audit trail");
    daemon.wait_log("Cabourotte health check \\\"dns\\\" failed.");
    assert!(daemon.running());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        "a file, not a directory"
    );
}

#[test]
fn a_control_socket_in_an_unwritable_place_is_fatal_with_exit_70() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &dir.path().join("journal"));
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &dir.path().join("ctl.sock").display().to_string(),
        &blocker.join("ctl.sock").display().to_string(),
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("control socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn garbage_and_huge_lines_on_the_control_socket_get_an_error_and_the_daemon_runs_on() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &dir.path().join("journal"));
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("Starting service");
    let socket = dir.path().join("ctl.sock");
    let ask = |bytes: &[u8]| -> String {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let _ = stream.write_all(bytes);
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        line
    };
    let answer = ask(b"hello\n");
    assert!(
        answer.contains("\"type\":\"error\"") && answer.contains("malformed request"),
        "{answer}"
    );
    let answer = ask(&vec![b'x'; 200_000]);
    assert!(answer.contains("request too large"), "{answer}");
    let answer = ask(b"{\"version\":9,\"command\":\"status\"}\n");
    assert!(answer.contains("protocol version 9"), "{answer}");
    // Still serving.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "dns", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemon started"));
    assert!(daemon.running());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

/// Unmounts a tmpfs made by a test, even when the test fails.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_journal_disk_keeps_gating_health_and_records_the_gap_afterwards() {
    if !nix::unistd::Uid::effective().is_root() {
        support::skip::skip("needs root to mount a small tmpfs");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(support::cabourotte::Emulator::start(
        support::cabourotte::Generation::V2,
    ));
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=8m",
            "anycastd-test",
            mnt.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let _unmount = Tmpfs(mnt.clone());
    let journal = mnt.join("journal");
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "50ms" }}]"#,
            emulator.url()
        ),
        OneService {
            journal: Some(&journal),
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    daemon.wait_log("Starting service");
    // Fill the disk.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
    }
    // Flap: transitions keep being decided and logged while the journal cannot write.
    let flap = |n: usize| {
        for i in 0..n {
            let behaviour = if i % 2 == 0 {
                Behaviour::Fail("down".into())
            } else {
                Behaviour::Pass
            };
            emulator.set("dns", behaviour);
            std::thread::sleep(Duration::from_millis(150));
        }
    };
    flap(40);
    let log = daemon.log_text();
    let decided = log.matches("is now considered unhealthy").count();
    assert!(
        decided >= 10,
        "health gating went on: {decided} withdrawals decided\n{log}"
    );
    assert!(daemon.running());
    // Space again: the next records say what was lost.
    std::fs::remove_file(&filler).unwrap();
    flap(20);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    let journal = Journal::open(&mnt.join("journal"), &Options::default()).unwrap();
    let gaps: Vec<u64> = journal
        .entries_from(0)
        .filter_map(|e| match e {
            Ok(Entry::Record(r)) => match r.event {
                Event::JournalGap(g) => Some(g.lost_records),
                _ => None,
            },
            _ => None,
        })
        .collect();
    eprintln!(
        "gaps: {gaps:?}\n{}",
        daemon
            .log_text()
            .lines()
            .filter(|l| l.contains("journal"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !gaps.is_empty() && gaps.iter().all(|n| *n > 0),
        "a gap record with the lost count: {gaps:?}"
    );
}
