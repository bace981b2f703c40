//! The commands an operator types during an incident, at the worst moments: while the config
//! file on disk does not validate, while FRR does not take a change, after a double SIGTERM;
//! and what history says afterwards. FRR is played by `tests/support/fake_vtysh.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::Daemon;
use support::fake_frr::{fake_frr_config, fake_vtysh, networks};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn anycastd(args: &[&str], config: &Path) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A runtime for the emulator, the emulator with dns and ntp passing, a directory.
fn setup() -> (tokio::runtime::Runtime, Emulator, tempfile::TempDir) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    (rt, emulator, tempfile::tempdir().unwrap())
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const ALL: [&str; 3] = [
    "123:203.0.113.123/32",
    "default:2001:db8::53/128",
    "default:203.0.113.53/32",
];

#[test]
fn client_commands_work_while_the_config_file_on_disk_is_invalid() {
    let (_rt, emulator, dir) = setup();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for("everything announced", || networks(dir.path()) == ALL);

    // A typo, as after a rejected reload.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("[services.ntp]", "[services.ntp]\nrise = \"x\""),
    )
    .unwrap();
    assert_eq!(anycastd(&["check-config"], &config).code, 65);

    let out = anycastd(&["status"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("dns: healthy since "),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("does not validate"), "{}", out.stderr);
    let out = anycastd(&["history", "dns"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = anycastd(&["replay", "dns"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = anycastd(&["drain", "dns", "--reason", "incident"], &config);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout, "dns: drained; FRR shows 2 prefix(es) withdrawn\n",
        "the answer comes once FRR shows it"
    );
    assert_eq!(networks(dir.path()), ["123:203.0.113.123/32"]);
    let out = anycastd(&["undrain", "dns"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "dns: undrained: now healthy; FRR shows 2 prefix(es) announced\n"
    );
    assert_eq!(networks(dir.path()), ALL);

    // The reload reaches the daemon, which rejects it, says why and journals it.
    let out = anycastd(&["reload"], &config);
    assert_eq!(out.code, 65, "{}", out.stdout);
    assert!(
        out.stderr.contains("services.ntp.rise"),
        "the daemon's answer names the key: {}",
        out.stderr
    );
    let out = anycastd(&["history"], &config);
    assert!(
        out.stdout.contains(&format!(
            "- reload rejected (uid {}), the running configuration is kept:",
            nix::unistd::getuid()
        )),
        "{}",
        out.stdout
    );
    assert!(daemon.running());

    // A TOML syntax error: the socket is still found.
    std::fs::write(&config, good.replace("[services.ntp]", "[services.ntp")).unwrap();
    let out = anycastd(&["status", "--check"], &config);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = anycastd(&["drain", "ntp", "--reason", "typo"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = anycastd(&["undrain", "ntp"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::write(
        &config,
        good.replace("[services.ntp]", "[services.ntp]\nrise = \"x\""),
    )
    .unwrap();

    let out = anycastd(&["stop"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!daemon.running(), "stop answers once the daemon is gone");
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    // Logs are text for people: no program debug output (a drain cause, a list).
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "draining (operator uid {}: incident)",
            nix::unistd::getuid()
        )),
        "{log}"
    );
    assert!(
        !log.contains("Operator {") && !log.contains("[\\\""),
        "{log}"
    );

    // No daemon now: what needs the config says so, with the errors.
    let out = anycastd(&["status"], &config);
    assert_eq!(out.code, 65);
    assert!(out.stderr.contains("services.ntp.rise"), "{}", out.stderr);
    assert!(
        out.stderr.contains("no daemon answers on"),
        "{}",
        out.stderr
    );
    assert_eq!(anycastd(&["stop"], &config).code, 69);
}

#[test]
fn a_drain_frr_does_not_confirm_says_so_and_exits_70() {
    let (_rt, emulator, dir) = setup();
    let down = dir.path().join("bgpd-down");
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("log"),
        &[("FAKE_VTYSH_BGPD_DOWN", down.to_str().unwrap())],
    );
    wait_for("everything announced", || networks(dir.path()) == ALL);
    std::fs::write(&down, "").unwrap();
    let out = anycastd(&["drain", "dns", "--reason", "x", "--wait", "1s"], &config);
    assert_eq!(out.code, 70, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with(
            "dns: drained; FRR has NOT confirmed the withdrawal of 2 of 2 prefix(es) yet: "
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("bgpd is not running"), "{}", out.stdout);
    // FRR cannot be read: a monitoring check says UNKNOWN, with the daemon running too.
    let out = anycastd(&["status", "--check"], &config);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("ANYCASTD UNKNOWN - dns 203.0.113.53/32: wanted withdrawn; FRR unreadable: bgpd is not running"),
        "{}",
        out.stdout
    );
    let out = anycastd(&["undrain", "dns", "--no-wait"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("announce 2 prefix(es) requested, not waited for"),
        "{}",
        out.stdout
    );
    // A drain that waits for nothing in FRR (already drained) is not "confirmed" either way.
    std::fs::remove_file(&down).unwrap();
    wait_for("bgpd back", || networks(dir.path()) == ALL);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

#[test]
fn a_change_being_applied_is_not_drift() {
    let (_rt, emulator, dir) = setup();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    // Every change takes FRR 2 s.
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("log"),
        &[("FAKE_VTYSH_DELAY", "2")],
    );
    wait_for("everything announced", || networks(dir.path()) == ALL);
    let out = anycastd(&["drain", "dns", "--reason", "x", "--no-wait"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: serde_json::Value =
        serde_json::from_str(&anycastd(&["status", "dns", "--json"], &config).stdout).unwrap();
    for p in status["services"][0]["prefixes"].as_array().unwrap() {
        assert_eq!(
            (p["applying"].as_bool(), p["drift"].as_bool()),
            (Some(true), Some(false)),
            "{p}"
        );
        assert!(
            p["note"]
                .as_str()
                .unwrap()
                .starts_with("being applied: wanted withdrawn, still present"),
            "{p}"
        );
    }
    // Not drift (CRITICAL): the drained service's own warning only.
    let out = anycastd(&["status", "--check"], &config);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .starts_with("ANYCASTD WARNING - dns: nothing announced (draining (operator"),
        "{}",
        out.stdout
    );
    wait_for("dns withdrawn", || {
        networks(dir.path()) == ["123:203.0.113.123/32"]
    });
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

/// The pids of live fake vtysh processes logging to `calls` (found by their environment).
fn fake_vtysh_processes(calls: &Path) -> Vec<u32> {
    let wanted = format!("FAKE_VTYSH_LOG={}", calls.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|environ| {
                    environ
                        .split(|b| *b == 0)
                        .any(|var| var == wanted.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn after_a_double_sigterm_the_next_start_journals_what_frr_really_did() {
    let (_rt, emulator, dir) = setup();
    let hang = dir.path().join("hang");
    let calls = dir.path().join("calls.log");
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let env = [
        ("FAKE_VTYSH_HANG", hang.to_str().unwrap()),
        ("FAKE_VTYSH_LOG", calls.to_str().unwrap()),
    ];
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("log1"), &env);
    wait_for("everything announced", || networks(dir.path()) == ALL);
    // FRR stops taking changes; SIGTERM, then a second one: the prefixes stay.
    std::fs::write(&hang, "").unwrap();
    daemon.signal(Signal::SIGTERM);
    daemon.wait_log("Received SIGTERM, terminating.");
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 70);
    let log = daemon.log_text();
    assert!(!log.contains("terminated."), "{log}");
    assert!(
        log.contains("stopped without a verified withdrawal"),
        "{log}"
    );
    assert_eq!(networks(dir.path()), ALL);
    // The daemon is gone, but a vtysh it started may outlive it (a slow interpreter start
    // can put its call after the exit). Let every such call reach the hang, so that removing
    // the file makes it fail without a change; then wait for it to end.
    wait_for("the first daemon's vtysh calls are all logged", || {
        let logged = std::fs::read_to_string(&calls).unwrap_or_default();
        fake_vtysh_processes(&calls).iter().all(|pid| {
            logged
                .lines()
                .any(|l| l.split(' ').nth(1) == Some(&pid.to_string()))
        })
    });
    std::fs::remove_file(&hang).unwrap();
    wait_for("the first daemon's vtysh calls ended", || {
        fake_vtysh_processes(&calls).is_empty()
    });
    assert_eq!(networks(dir.path()), ALL);

    // The next start: the journal says drained, FRR has them: withdrawals are decided; the
    // checks pass at once, so the services are announced again.
    let before = std::fs::read_to_string(&calls).unwrap_or_default().len();
    let mut daemon = Daemon::start_with_env(&config, &dir.path().join("log2"), &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = anycastd(&["status", "dns"], &config);
        if status
            .stdout
            .contains("203.0.113.53/32: wanted announced; FRR: configured")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dns not announced: {}{}\n{}",
            status.stdout,
            status.stderr,
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    // What this run sent to FRR is the oracle.
    let sent = std::fs::read_to_string(&calls).unwrap()[before..].to_owned();
    let history = anycastd(&["history", "dns"], &config).stdout;
    let reconciliation = history
        .lines()
        .rfind(|l| l.contains("start-up reconciliation"))
        .unwrap();
    let withdrawn_before_stop = sent.split("no network 203.0.113.53/32").count() > 2; // once at the start (if it was), once at the stop
    if withdrawn_before_stop {
        assert!(
            reconciliation.contains("withdraw 203.0.113.53/32 of dns (in FRR, but not announced at the last stop): FRR applied"),
            "FRR was sent the withdrawal: {reconciliation}\n{sent}"
        );
    } else {
        assert!(
            reconciliation.contains("withdraw 203.0.113.53/32 of dns (in FRR, but not announced at the last stop): FRR superseded by a newer decision before it was applied (FRR unchanged)"),
            "FRR was never sent the withdrawal: {reconciliation}\n{sent}"
        );
        assert!(
            history
                .lines()
                .any(|l| l.contains("starting -> healthy") && l.ends_with("; FRR already so")),
            "{history}"
        );
    }
    assert!(!reconciliation.contains("withdrew"), "{reconciliation}");
}

#[test]
fn checks_that_answer_every_poll_never_journal_a_missing_result_also_across_a_restart() {
    let (_rt, emulator, dir) = setup();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    // A pending timeout shorter than the runs, so that its (stale) timer fires in them.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "interval = \"100ms\" }",
        "interval = \"100ms\", pending_timeout = \"1s\" }",
    );
    std::fs::write(&config, text).unwrap();
    for run in 0..2 {
        let mut daemon = Daemon::start(&config, &dir.path().join(format!("log{run}")));
        wait_for("everything announced", || networks(dir.path()) == ALL);
        std::thread::sleep(Duration::from_secs(3));
        daemon.signal(Signal::SIGTERM);
        assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    }
    let out = anycastd(&["history", "--json"], &config);
    assert!(
        !out.stdout.contains("\"kind\":\"pending_timeout\""),
        "{}",
        out.stdout
    );
    let out = anycastd(&["history", "--verbose"], &config);
    assert!(!out.stdout.contains("no result"), "{}", out.stdout);
    // Each check's results: one "pass" per start, nothing else.
    let passes = out
        .stdout
        .lines()
        .filter(|l| l.contains(" dns check dns: pass"))
        .count();
    assert_eq!(passes, 2, "{}", out.stdout);
}

#[test]
fn history_and_replay_options_do_what_they_say() {
    let (_rt, emulator, dir) = setup();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for("everything announced", || networks(dir.path()) == ALL);
    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    wait_for("dns withdrawn", || {
        networks(dir.path()) == ["123:203.0.113.123/32"]
    });
    emulator.set("dns", Behaviour::Pass);
    wait_for("dns back", || networks(dir.path()) == ALL);

    for through in ["the daemon", "the journal"] {
        let all = anycastd(&["history", "dns"], &config);
        assert_eq!(all.code, 0, "{through}: {}", all.stderr);
        let all: Vec<&str> = all.stdout.lines().collect();
        let tail = anycastd(&["history", "dns", "--tail", "2"], &config).stdout;
        assert_eq!(
            tail.lines().collect::<Vec<_>>(),
            all[all.len() - 2..],
            "{through}"
        );
        let limit = anycastd(&["history", "dns", "--limit", "3"], &config).stdout;
        assert_eq!(limit.lines().collect::<Vec<_>>(), all[..3], "{through}");
        assert_eq!(anycastd(&["history", "--limit", "0"], &config).code, 2);
        assert_eq!(anycastd(&["history", "--tail", "0"], &config).code, 2);
        let since = anycastd(&["history", "dns", "--since", "600"], &config);
        assert_eq!(since.code, 0, "bare seconds: {}", since.stderr);
        assert_eq!(since.stdout.lines().count(), all.len(), "{through}");
        let until = chrono::Utc::now() + chrono::Duration::hours(1);
        let window = anycastd(
            &[
                "history",
                "dns",
                "--since",
                "1h",
                "--until",
                &until.to_rfc3339(),
            ],
            &config,
        );
        assert_eq!(window.code, 0, "{through}: {}", window.stderr);
        assert_eq!(
            window.stdout.lines().count(),
            all.len(),
            "{through}: {}",
            window.stderr
        );
        let out = anycastd(&["replay", "dns", "--since", "1h", "--fall", "2"], &config);
        assert_eq!(out.code, 0, "{through}: {}", out.stderr);
        let out = anycastd(
            &[
                "replay",
                "dns",
                "--since",
                "2000-01-01T00:00:00Z",
                "--until",
                "2000-01-01T00:00:01Z",
            ],
            &config,
        );
        assert_eq!(out.code, 0, "{through}: {}", out.stderr);
        assert!(out.stdout.contains("note: "), "{through}: {}", out.stdout);
        if through == "the daemon" {
            // --follow with an --until in the past ends at once (it would hang before).
            let out = anycastd(
                &[
                    "history",
                    "dns",
                    "--follow",
                    "--until",
                    "2000-01-01T00:00:00Z",
                ],
                &config,
            );
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert!(
                out.stderr.contains("--until is in the past"),
                "{}",
                out.stderr
            );
            // A follower is told how to resume when the daemon stops.
            let follower = Command::new(env!("CARGO_BIN_EXE_anycastd"))
                .args(["history", "dns", "--follow", "-c"])
                .arg(&config)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(500));
            daemon.signal(Signal::SIGTERM);
            assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
            let out = follower.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(69), "{stderr}");
            assert!(
                stderr.contains("the daemon stopped; resume with --after-seq "),
                "{stderr}"
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("draining (shutdown)"),
                "it saw the stop: {stdout}"
            );
        }
    }
    let out = anycastd(
        &["drain", "dns", "--reason", "x", "--for", "999999d"],
        &config,
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("too long"), "{}", out.stderr);
}

#[test]
fn two_signals_at_once_never_journal_a_withdrawal_that_did_not_happen() {
    // As `timeout -s INT` does (the pid, then its group, a moment apart): the second can land
    // before the drivers have handed anything to the writers. Whatever the race gives, the
    // stop record must say what FRR really has.
    let mut cut_short = 0;
    for round in 0..8 {
        let (_rt, emulator, dir) = setup();
        let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
        let mut daemon = Daemon::start(&config, &dir.path().join("log"));
        wait_for("everything announced", || networks(dir.path()) == ALL);
        daemon.signal(Signal::SIGINT);
        std::thread::sleep(Duration::from_micros(100 * round));
        daemon.signal(Signal::SIGINT);
        let code = daemon.wait(Duration::from_secs(30));
        let left = networks(dir.path());
        let history = anycastd(&["history"], &config).stdout;
        let stop = history
            .lines()
            .rfind(|l| l.contains("daemon stopped"))
            .unwrap()
            .to_owned();
        if stop.contains("every prefix withdrawn") {
            assert_eq!(left, Vec::<String>::new(), "{stop}");
            assert_eq!(code, 0, "{stop}");
        } else {
            cut_short += 1;
            assert_eq!(code, 70, "{stop}");
            assert!(stop.contains("NOT verified withdrawn: "), "{stop}");
            for network in &left {
                let prefix = network.split_once(':').unwrap().1;
                assert!(stop.contains(prefix), "{prefix} in FRR but not in: {stop}");
            }
            let log = daemon.log_text();
            assert!(!log.contains("still announced or unknown: . "), "{log}");
        }
    }
    eprintln!("{cut_short} of 8 stops were cut short by the second signal");
}

#[test]
fn status_check_warns_while_a_service_announces_nothing_and_names_why() {
    let (_rt, emulator, dir) = setup();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for("everything announced", || networks(dir.path()) == ALL);
    let check = |args: &[&str]| {
        let out = anycastd(args, &config);
        (out.code, out.stdout)
    };
    assert_eq!(
        check(&["status", "--check"]),
        (
            0,
            "ANYCASTD OK - 2 service(s), 3 prefix(es) as wanted in FRR\n".to_owned()
        )
    );

    // A failing check withdraws dns: FRR is as wanted, but dns announces nothing.
    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    wait_for("dns withdrawn", || {
        networks(dir.path()) == ["123:203.0.113.123/32"]
    });
    let (code, out) = check(&["status", "--check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("ANYCASTD WARNING - dns: nothing announced (unhealthy: "),
        "{out}"
    );
    assert!(out.contains("resolver down"), "{out}");
    assert!(!out.contains("ntp"), "{out}");
    assert_eq!(check(&["status", "ntp", "--check"]).0, 0);

    // Drained, ntp announces nothing either: both are named, each with why.
    let out = anycastd(&["drain", "ntp", "--reason", "maintenance"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, out) = check(&["status", "--check"]);
    assert_eq!(code, 1, "{out}");
    let parts: Vec<&str> = out
        .trim_end()
        .trim_start_matches("ANYCASTD WARNING - ")
        .split("; ")
        .collect();
    assert_eq!(parts.len(), 2, "{out}");
    assert!(
        parts[0].starts_with("dns: nothing announced (unhealthy: "),
        "{out}"
    );
    assert!(
        parts[1].starts_with("ntp: nothing announced (draining (operator"),
        "{out}"
    );
    assert!(parts[1].contains("maintenance"), "{out}");

    // Back to OK once both announce again.
    emulator.set("dns", Behaviour::Pass);
    let out = anycastd(&["undrain", "ntp"], &config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    wait_for("everything announced again", || networks(dir.path()) == ALL);
    assert_eq!(check(&["status", "--check"]).0, 0);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}
