//! Crash-safe restarts, planned handovers, drift repair and the audit trail, against a real
//! FRR and a real BGP peer. "Nothing was withdrawn" is shown with a streaming monitor at the
//! peer (`gobgp monitor global rib`), which sees every UPDATE, not with polling.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Entry, Journal, Options};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{example_config, Daemon};
use support::monitor::Monitor;
use support::testbed::{Peer, Testbed, ALL_FOUR, NTP_ONLY};

const EXIT: Duration = Duration::from_secs(30);
const DNS_ONLY: [&str; 2] = [
    "default:203.0.113.53/32",
    "default:2001:db8::b19:bad:53/128",
];
/// A `network` line put in FRR by hand, which anycastd must never touch (it has no route in
/// the testbed, so FRR's import-check keeps it from the peer; it is checked in the running
/// config).
const UNMANAGED: &str = "198.51.100.0/24";

fn healthy_emulator(rt: &tokio::runtime::Runtime) -> Emulator {
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    for check in ["dns", "ntp_v4", "ntp_v6"] {
        emulator.set(check, Behaviour::Pass);
    }
    emulator
}

fn add_unmanaged(tb: &Testbed) {
    tb.vtysh(&[
        "configure terminal",
        "router bgp 65536",
        "address-family ipv4 unicast",
        &format!("network {UNMANAGED}"),
    ]);
    assert!(tb.networks().0.contains(&format!("default:{UNMANAGED}")));
}

fn assert_unmanaged_untouched(tb: &Testbed) {
    assert!(
        tb.networks().0.contains(&format!("default:{UNMANAGED}")),
        "the unmanaged network line was touched"
    );
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

fn reconciled(events: &[Event]) -> Vec<&wire::Reconciled> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reconciled(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn anycastd(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

/// Wait until `history SERVICE --json` (through the daemon) shows `n` applied FRR changes.
fn wait_applied(config: &Path, service: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = anycastd(&["history", service, "--json"], config);
        let text = String::from_utf8_lossy(&out.stdout);
        let applied = text
            .lines()
            .filter(|l| l.contains("\"kind\":\"apply\"") && l.contains("applied"))
            .count();
        if applied >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{applied} applied, wanted {n}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkill_while_healthy_then_restart_withdraws_nothing_at_the_peer() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    add_unmanaged(&tb);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    tb.wait_peer(&ALL_FOUR);
    let monitor = Monitor::start(&tb, dir.path());
    first.signal(Signal::SIGKILL);
    first.wait(EXIT);

    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    second.wait_log("kept announced (restored after a restart)");
    // Let every check report a few times after the restart.
    let dns_polls_before = emulator.requests("dns");
    while emulator.requests("dns") < dns_polls_before + 5 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(second.running());
    assert_eq!(
        monitor.withdrawals(),
        Vec::<String>::new(),
        "the peer saw a withdrawal across the restart"
    );
    tb.wait_peer(&ALL_FOUR);
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(EXIT), 0);
    assert_unmanaged_untouched(&tb);
    let events = events(dir.path());
    let rec = reconciled(&events);
    assert_eq!(rec.len(), 2, "one reconciliation per start");
    let kept: Vec<&wire::ReconcileItem> = rec[1]
        .items
        .iter()
        .filter(|i| i.decision == wire::ReconcileDecision::Kept)
        .collect();
    assert_eq!(kept.len(), 4, "{:?}", rec[1]);
}

#[test]
fn sigkill_then_ntp_removed_from_the_config_withdraws_only_ntp() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    add_unmanaged(&tb);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    tb.wait_peer(&ALL_FOUR);
    let monitor = Monitor::start(&tb, dir.path());
    first.signal(Signal::SIGKILL);
    first.wait(EXIT);

    let text = std::fs::read_to_string(&config).unwrap();
    let without_ntp = &text[..text.find("[services.ntp]").unwrap()];
    std::fs::write(&config, without_ntp).unwrap();
    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    tb.wait_peer(&DNS_ONLY);
    let withdrawn = monitor.withdrawals();
    assert!(
        withdrawn.iter().all(|p| p.contains("123")),
        "only ntp's prefixes are withdrawn: {withdrawn:?}"
    );
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(EXIT), 0);
    assert_unmanaged_untouched(&tb);
    let events = events(dir.path());
    let orphans: Vec<String> = reconciled(&events)
        .last()
        .unwrap()
        .items
        .iter()
        .filter(|i| i.decision == wire::ReconcileDecision::Orphan)
        .map(|i| format!("{}:{}", i.service, i.prefix.prefix))
        .collect();
    assert_eq!(
        orphans,
        ["ntp:2001:db8::123:7e11:713e/128", "ntp:203.0.113.123/32"]
    );
    // The orphan withdrawal was applied, and journaled for ntp.
    assert!(events.iter().any(|e| matches!(e, Event::Apply(a) if a.service == "ntp" && a.change == wire::Change::Withdraw && a.outcome == wire::Outcome::Applied)));
}

#[test]
fn sigkill_then_all_checks_failing_withdraws_everything_by_the_first_verdict() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    add_unmanaged(&tb);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    tb.wait_peer(&ALL_FOUR);
    first.signal(Signal::SIGKILL);
    first.wait(EXIT);
    for check in ["dns", "ntp_v4", "ntp_v6"] {
        emulator.set(check, Behaviour::Status(503));
    }
    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    tb.wait_peer(&[]);
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(EXIT), 0);
    assert_unmanaged_untouched(&tb);
    // Restored healthy, then the first verdict (HTTP 503) withdrew.
    let events = events(dir.path());
    for service in ["dns", "ntp"] {
        let path: Vec<(wire::State, wire::State)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Transition(t) if t.service == service => {
                    Some((t.from.clone(), t.to.clone()))
                }
                _ => None,
            })
            .skip(1)
            .take(2)
            .collect();
        assert_eq!(
            path,
            [
                (wire::State::Healthy, wire::State::Healthy),
                (wire::State::Healthy, wire::State::Unhealthy)
            ],
            "{service}"
        );
    }
}

#[test]
fn stop_keep_announced_then_start_withdraws_nothing() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    tb.wait_peer(&ALL_FOUR);
    let monitor = Monitor::start(&tb, dir.path());
    let out = anycastd(&["stop", "--keep-announced"], &config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(first.wait(EXIT), 0);
    assert_eq!(
        tb.networks().0.len(),
        4,
        "the prefixes stay configured in FRR"
    );

    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    second.wait_log("kept announced (restored after a restart)");
    let before = emulator.requests("dns");
    while emulator.requests("dns") < before + 5 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(monitor.withdrawals(), Vec::<String>::new());
    tb.wait_peer(&ALL_FOUR);
    // A plain `stop` withdraws and reports it.
    let out = anycastd(&["stop"], &config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("every prefix withdrawn"));
    assert_eq!(second.wait(EXIT), 0);
    tb.wait_peer(&[]);
    let events = events(dir.path());
    assert!(events.iter().any(
        |e| matches!(e, Event::Operator(o) if o.kind == wire::OperatorKind::Handover && o.uid == 0)
    ));
    assert!(events.iter().any(
        |e| matches!(e, Event::DaemonStopped(s) if s.outcome == wire::StopOutcome::HandedOver)
    ));
    // `stop` with no daemon is "unavailable".
    assert_eq!(anycastd(&["stop"], &config).status.code(), Some(69));
}

#[test]
fn a_bgpd_restart_that_drops_the_runtime_config_is_repaired_after_a_journaled_drift() {
    let Some(tb) = Testbed::up(Peer::Bird) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "vtysh_timeout = \"5s\"",
        "vtysh_timeout = \"5s\"\nreconcile_interval = \"1s\"",
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    // Applied and verified (not only at the peer): a restart during the writer's read-back
    // would make it a failed announcement retried, not a drift.
    wait_applied(&config, "dns", 2);
    wait_applied(&config, "ntp", 2);
    // bgpd dies and comes back with the saved config only, as under watchfrr.
    tb.restart_bgpd(true);
    tb.wait_established();
    tb.wait_peer(&ALL_FOUR);
    daemon.wait_log("Drift: prefix");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    let events = events(dir.path());
    let drifts: Vec<&wire::Drift> = events
        .iter()
        .filter_map(|e| match e {
            Event::Drift(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(drifts.len(), 4, "every prefix found missing: {drifts:?}");
    assert!(drifts.iter().all(|d| !d.present && d.wanted));
}

fn normalise(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once(' ') {
            Some((time, rest)) if time.ends_with('Z') => format!("TIME {rest}"),
            _ => l.to_owned(),
        })
        .map(|l| match l.split_once("; FRR applied ") {
            Some((head, tail)) => {
                let number = tail.trim_start_matches("in ");
                let rest = number.split_once(" ms").map(|(_, rest)| rest).unwrap_or("");
                let word = if tail.starts_with("in ") { "in " } else { "" };
                format!("{head}; FRR applied {word}N ms{rest}")
            }
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// "FRR applied in N ms" of each transition line, checked against the records: the last
/// outcome's time minus the transition's.
fn check_apply_times(config: &Path) {
    let text = String::from_utf8_lossy(&anycastd(&["history", "dns"], config).stdout).into_owned();
    let json = String::from_utf8_lossy(&anycastd(&["history", "dns", "--json"], config).stdout)
        .into_owned();
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected = Vec::new();
    for t in records.iter().filter(|r| r["kind"] == "transition") {
        let applies: Vec<i64> = records
            .iter()
            .filter(|r| r["kind"] == "apply" && r["record"]["Apply"]["decision_seq"] == t["seq"])
            .map(|r| r["at_ms"].as_i64().unwrap())
            .collect();
        if let Some(last) = applies.iter().max() {
            expected.push(last - t["at_ms"].as_i64().unwrap());
        }
    }
    let shown: Vec<i64> = text
        .lines()
        .filter_map(|l| l.split_once("; FRR applied "))
        .map(|(_, tail)| {
            tail.trim_start_matches("in ")
                .split_once(" ms")
                .unwrap()
                .0
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(shown, expected, "{text}");
    assert_eq!(shown.len(), 4, "{text}");
}

#[test]
fn history_of_dns_after_a_flip_sequence_matches_the_flips_through_the_socket_and_directly() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    wait_applied(&config, "dns", 2);
    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    tb.wait_peer(&NTP_ONLY);
    wait_applied(&config, "dns", 4);
    emulator.set("dns", Behaviour::Pass);
    tb.wait_peer(&ALL_FOUR);
    wait_applied(&config, "dns", 6);
    let through_socket = anycastd(&["history", "dns"], &config);
    assert_eq!(through_socket.status.code(), Some(0));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    let direct = anycastd(&["history", "dns"], &config);
    assert_eq!(
        direct.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );

    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/history/dns.txt");
    let direct = normalise(&String::from_utf8_lossy(&direct.stdout));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, &direct).unwrap();
    }
    assert_eq!(direct, std::fs::read_to_string(&golden_path).unwrap());
    // While running, the same history up to that moment.
    let socket = normalise(&String::from_utf8_lossy(&through_socket.stdout));
    assert!(
        direct.starts_with(&socket),
        "socket:\n{socket}\ndirect:\n{direct}"
    );
    assert!(socket.lines().count() >= 7, "{socket}");
    check_apply_times(&config);

    // Filters and errors.
    let out = anycastd(&["history", "nope"], &config);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("known services: dns, ntp"));
    let out = anycastd(&["history", "--since", "yesterday"], &config);
    assert_eq!(out.status.code(), Some(2));
    let out = anycastd(
        &[
            "history",
            "dns",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2000-01-02T00:00:00Z",
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("no events"));
    let out = anycastd(&["history", "dns", "--limit", "3", "--json"], &config);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["kind"], "daemon_started");
}

#[test]
fn bgpd_stopped_while_running_is_retried_and_repaired_when_it_returns() {
    let Some(tb) = Testbed::up(Peer::Bird) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "vtysh_timeout = \"5s\"",
        "vtysh_timeout = \"5s\"\nreconcile_interval = \"1s\"",
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    // (What the peer keeps meanwhile depends on graceful restart: not asserted.)
    tb.stop_bgpd();
    // While bgpd is away, dns fails: the decision is taken and journaled, FRR cannot be told.
    emulator.set("dns", Behaviour::Fail("down".into()));
    daemon.wait_log("Service \\\"dns\\\" is now considered unhealthy");
    // vtysh answers for the daemons still up, and its running config has no BGP at all: that
    // is bgpd not running, never "no BGP instance". Waited for on the withdrawal itself: the
    // announcement's verification may have failed so already (bgpd stopped right after the
    // peer had the routes), and bgpd must stay down until the withdrawal has been tried.
    let withdrawal_failed = "FRR withdraw 203.0.113.53/32: FAILED: cannot read FRR's running config: bgpd is not running";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let history = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["history", "dns", "--verbose", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        let history = String::from_utf8_lossy(&history.stdout).into_owned();
        if history.contains(withdrawal_failed) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the withdrawal was not tried and failed while bgpd was down:\n{history}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(daemon.running());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["status", "dns", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("FRR unreadable: bgpd is not running"),
        "{text}"
    );
    // bgpd comes back with its saved config: the writer repairs what is missing (ntp only).
    tb.start_bgpd(true);
    tb.wait_established();
    tb.wait_peer(&NTP_ONLY);
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
    let log = daemon.log_text();
    assert!(!log.contains("no BGP instance"), "{log}");
    let history = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "dns", "--verbose", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("bgpd is not running"), "{history}");
    assert!(!history.contains("no BGP instance"), "{history}");
    // The withdrawal decided while bgpd was down failed (and was retried), it was not
    // "already so".
    assert!(history.contains(withdrawal_failed), "{history}");
}

/// The README example's four prefixes, each naming `vtysh` (a wrapper script), with exec
/// checks that pass, and `[frrouting]` holding `frrouting`.
fn wrapper_config(dir: &Path, vtysh: &Path, frrouting: &str) -> std::path::PathBuf {
    let w = vtysh.display();
    let check = "checks.exec = [{ name = \"ok\", command = \"/bin/true\", interval = \"200ms\" }]";
    let text = format!(
        "[journal]\npath = {journal:?}\n[control]\nsocket = {socket:?}\n[frrouting]\nvtysh_timeout = \"5s\"\n{frrouting}\n\
         [services.dns]\nprefixes.frrouting = [{{ prefix = \"2001:db8::b19:bad:53\", vtysh = \"{w}\" }}, {{ prefix = \"203.0.113.53\", vtysh = \"{w}\" }}]\n{check}\n\
         [services.ntp]\nprefixes.frrouting = [{{ prefix = \"2001:db8::123:7e11:713e\", vrf = \"123\", vtysh = \"{w}\" }}, {{ prefix = \"203.0.113.123\", vrf = \"123\", vtysh = \"{w}\" }}]\n{check}\n",
        journal = dir.join("journal"),
        socket = dir.join("ctl.sock"),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// bgpd restarted (its runtime config lost, frr.conf booted as watchfrr does) while the
/// daemon runs with `config`: the four prefixes are back at the peer; returns how long after
/// the BGP sessions were up again (0 when they were there first), and checks the restart
/// was journaled.
fn restart_bgpd_and_time_the_repair(tb: &Testbed, config: &Path) -> Duration {
    tb.restart_bgpd(true);
    tb.wait_established();
    let sessions_up = Instant::now();
    tb.wait_peer(&ALL_FOUR);
    let repaired = sessions_up.elapsed();
    let history = anycastd(&["history", "dns", "--json"], config);
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.contains("\"routing_restarted\""),
        "the bgpd restart was not journaled:\n{history}"
    );
    repaired
}

/// The configured `vtysh` is a wrapper script, the usual way to reach an FRR in a namespace or
/// a second instance: a script whose `--vty_socket` is a variable cannot be read, so restart
/// detection is off, said in the log at start and in `status`; `[frrouting] vty_sockets`
/// names the directory and a bgpd restart is repaired within seconds, not at the 30 s
/// periodic pass; a script that passes a literal `--vty_socket` needs no key.
#[test]
fn a_bgpd_restart_behind_a_vtysh_wrapper_is_repaired_within_seconds() {
    let Some(tb) = Testbed::up(Peer::Bird) else {
        return;
    };
    let run = tb.dir.join("frr/run");
    let etc = tb.dir.join("frr/etc");
    let tmp = tempfile::tempdir().unwrap();
    let variable = tmp.path().join("vtysh-variable");
    write_script(
        &variable,
        &format!(
            "#!/bin/sh\nD={}\nexec /usr/bin/vtysh --vty_socket \"$D\" --config_dir {} \"$@\"\n",
            run.display(),
            etc.display()
        ),
    );
    let literal = tmp.path().join("vtysh-literal");
    write_script(
        &literal,
        &format!(
            "#!/bin/sh\nexec /usr/bin/vtysh --vty_socket {} --config_dir {} \"$@\"\n",
            run.display(),
            etc.display()
        ),
    );
    let mut measured = Vec::new();

    // 1. A variable: off, and said so at start and in status (text and JSON).
    let dir = tempfile::tempdir().unwrap();
    let config = wrapper_config(dir.path(), &variable, "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    daemon.wait_log("restart detection off for FRR through");
    let off = format!(
        "note: restart detection off for FRR through {}: {} is a script that names its vty socket through a variable ($D); set [frrouting] vty_sockets",
        variable.display(),
        variable.display()
    );
    let status = anycastd(&["status"], &config);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&off), "{text}");
    assert!(
        text.contains("a bgpd restart is repaired within reconcile_interval (30s)"),
        "{text}"
    );
    let json = anycastd(&["status", "--json"], &config);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["notes"].as_array().map(Vec::len), Some(1), "{json}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    tb.wait_peer(&[]);

    // 2. The same wrapper with `vty_sockets`: on, and a restart is repaired at once.
    let dir = tempfile::tempdir().unwrap();
    let key = format!(
        "vty_sockets = {{ {:?} = {:?} }}",
        variable.display().to_string(),
        run.display().to_string()
    );
    let config = wrapper_config(dir.path(), &variable, &key);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    wait_applied(&config, "dns", 2);
    wait_applied(&config, "ntp", 2);
    daemon.wait_log("is re-created (where: [frrouting] vty_sockets)");
    let status = anycastd(&["status"], &config);
    assert!(!String::from_utf8_lossy(&status.stdout).contains("note:"));
    measured.push(restart_bgpd_and_time_the_repair(&tb, &config));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    tb.wait_peer(&[]);

    // 3. A literal `--vty_socket` in the script: read from it.
    let dir = tempfile::tempdir().unwrap();
    let config = wrapper_config(dir.path(), &literal, "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    wait_applied(&config, "dns", 2);
    wait_applied(&config, "ntp", 2);
    daemon.wait_log(&format!(
        "noticed when {}/bgpd.vty is re-created (where: the wrapper script's --vty_socket or -N)",
        run.display()
    ));
    measured.push(restart_bgpd_and_time_the_repair(&tb, &config));
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);

    eprintln!("MEASURED: back at the peer {measured:?} after the sessions were up");
    // The periodic pass comes every 30 s: anything near that is the pass, not detection.
    for repaired in measured {
        assert!(
            repaired < Duration::from_secs(3),
            "repaired {repaired:?} after the sessions were up"
        );
    }
}
