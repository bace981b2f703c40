//! The daemon end to end against a real FRR and a real BGP peer in network namespaces, with
//! the README example (dns: two prefixes in the default VRF; ntp: two in VRF 123) and the
//! Cabourotte emulator. Assertions are on what the peer receives and on FRR's running config.
//! Needs root and the packages frr, gobgpd; skipped with a reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Entry, Journal, Options};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{example_config, Daemon};
use support::testbed::{Peer, Testbed, ALL_FOUR, NTP_ONLY};

const EXIT: Duration = Duration::from_secs(30);

fn healthy_emulator(rt: &tokio::runtime::Runtime, generation: Generation) -> Emulator {
    let emulator = rt.block_on(Emulator::start(generation));
    for check in ["dns", "ntp_v4", "ntp_v6"] {
        emulator.set(check, Behaviour::Pass);
    }
    emulator
}

fn journal_events(dir: &Path) -> Vec<(u64, Event)> {
    let journal = Journal::open(&dir.join("journal"), &Options::default()).unwrap();
    journal
        .entries_from(0)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => (r.seq, r.event),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn the_peer_gets_all_four_loses_only_dns_on_failure_and_everything_is_journaled_in_order() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt, Generation::V2);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));

    tb.wait_peer(&ALL_FOUR);
    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    tb.wait_peer(&NTP_ONLY);
    let (nets, _) = tb.networks();
    assert_eq!(
        nets.len(),
        2,
        "dns's network lines are gone from FRR: {nets:?}"
    );
    emulator.set("dns", Behaviour::Pass);
    tb.wait_peer(&ALL_FOUR);

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
    assert!(tb.networks().0.is_empty());
    let log = daemon.log_text();
    for line in [
        "Starting service \\\"dns\\\".",
        "Service \\\"dns\\\" is now considered healthy, announcing related prefixes.",
        "Service \\\"dns\\\" is now considered unhealthy, denouncing related prefixes.",
        "Received SIGTERM, terminating.",
        "Service \\\"ntp\\\" terminated.",
    ] {
        assert!(log.contains(line), "log lacks {line}:\n{log}");
    }

    // The journal: start, edges, transitions with causes, apply outcomes, stop, in order.
    let events = journal_events(dir.path());
    assert!(matches!(events.first(), Some((1, Event::DaemonStarted(s))) if s.services.len() == 2));
    assert!(matches!(
        events.last(),
        Some((
            _,
            Event::DaemonStopped(wire::DaemonStopped {
                outcome: wire::StopOutcome::WithdrawnAll,
                ..
            })
        ))
    ));
    let dns: Vec<&(u64, Event)> = events
        .iter()
        .filter(|(_, e)| e.service() == Some("dns"))
        .collect();
    let transitions: Vec<(u64, &wire::State, &wire::State, &wire::Cause)> = dns
        .iter()
        .filter_map(|(seq, e)| match e {
            Event::Transition(t) => Some((*seq, &t.from, &t.to, &t.cause)),
            _ => None,
        })
        .collect();
    let states: Vec<(&wire::State, &wire::State)> =
        transitions.iter().map(|t| (t.1, t.2)).collect();
    assert_eq!(
        states,
        vec![
            (&wire::State::Starting, &wire::State::Healthy),
            (&wire::State::Healthy, &wire::State::Unhealthy),
            (&wire::State::Unhealthy, &wire::State::Healthy),
            (
                &wire::State::Healthy,
                &wire::State::Draining(wire::DrainCause::Shutdown)
            ),
        ]
    );
    match transitions[1].3 {
        wire::Cause::Verdict {
            healthy: false,
            checks,
        } => assert_eq!(
            checks,
            &vec![wire::CheckResult {
                check: "dns".into(),
                observation: wire::Observation::Fail("resolver down".into())
            }]
        ),
        other => panic!("unhealthy transition caused by {other:?}"),
    }
    // Each transition is followed by the apply outcome of both prefixes, decided by it.
    for (seq, _, to, _) in &transitions {
        let applied: Vec<&wire::Apply> = dns
            .iter()
            .filter_map(|(s, e)| match e {
                Event::Apply(a) if a.decision_seq == *seq && *s > *seq => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(
            applied.len(),
            2,
            "apply outcomes of transition {seq} to {to:?}: {applied:?}"
        );
        assert!(
            applied.iter().all(|a| a.outcome == wire::Outcome::Applied),
            "{applied:?}"
        );
    }
    // Check edges: the first result, the failure, the recovery; never one per poll.
    let edges: Vec<&wire::Observation> = dns
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CheckEdge(c) => Some(&c.observation),
            _ => None,
        })
        .collect();
    assert_eq!(
        edges,
        vec![
            &wire::Observation::Pass,
            &wire::Observation::Fail("resolver down".into()),
            &wire::Observation::Pass
        ]
    );
    // Edges come before the transition they caused.
    let first_fail_edge = dns
        .iter()
        .find(|(_, e)| matches!(e, Event::CheckEdge(c) if c.observation != wire::Observation::Pass))
        .map(|(s, _)| *s)
        .unwrap();
    assert!(first_fail_edge < transitions[1].0);
}

#[test]
fn sigterm_and_sigint_withdraw_all_four_in_ten_runs_each() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt, Generation::V1);
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        for run in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
            let mut daemon = Daemon::start(&config, &dir.path().join("log"));
            tb.wait_peer(&ALL_FOUR);
            daemon.signal(signal);
            let code = daemon.wait(EXIT);
            assert_eq!(code, 0, "{signal} run {run}: {}", daemon.log_text());
            assert!(
                tb.networks().0.is_empty(),
                "{signal} run {run}: network lines left in FRR"
            );
            tb.wait_peer(&[]);
        }
    }
}

#[test]
fn a_vtysh_that_fails_a_few_calls_then_recovers_ends_announced_with_the_daemon_running() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt, Generation::V2);
    let dir = tempfile::tempdir().unwrap();
    // A vtysh that fails its first four calls the way an unreachable FRR does.
    let wrapper = dir.path().join("flaky-vtysh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nn=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}\n\
             if [ $n -le 4 ]; then echo 'Exiting: failed to connect to any daemons.' >&2; exit 1; fi\n\
             exec /usr/bin/vtysh \"$@\"\n",
            count = dir.path().join("count").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "prefixes.frrouting = [\"2001:db8::b19:bad:53\", \"203.0.113.53\"]",
        &format!(
            "prefixes.frrouting = [{{ prefix = \"2001:db8::b19:bad:53\", vtysh = {w:?} }}, {{ prefix = \"203.0.113.53\", vtysh = {w:?} }}]",
            w = wrapper.display().to_string()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    assert!(daemon.running(), "{}", daemon.log_text());
    daemon.wait_log("Could not announce prefix");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
    let failed = journal_events(dir.path())
        .into_iter()
        .filter(|(_, e)| matches!(e, Event::Apply(a) if matches!(&a.outcome, wire::Outcome::Failed(r) if r.contains("failed to connect"))))
        .count();
    assert!(failed >= 1, "the failures are journaled");
}

#[test]
fn a_missing_vrf_instance_is_an_error_for_its_prefixes_only_and_is_never_created() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt, Generation::V2);
    emulator.set("web", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[services.web]\nprefixes.frrouting = [{{ prefix = \"198.51.100.80\", vrf = \"999\" }}]\n\
         checks.cabourotte = [{{ name = \"web\", url = \"{}\", interval = \"200ms\" }}]\n",
        emulator.url()
    );
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), &extra);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    daemon.wait_log("no BGP instance for VRF 999");
    let (_, routers) = tb.networks();
    assert_eq!(
        routers,
        ["router bgp 65536", "router bgp 65537 vrf 123"],
        "no instance was created"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait(EXIT),
        0,
        "web's prefix was never in FRR, so it is withdrawn: {}",
        daemon.log_text()
    );
    let web_failures: Vec<String> = journal_events(dir.path())
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Apply(wire::Apply {
                service,
                outcome: wire::Outcome::Failed(r),
                ..
            }) if service == "web" => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        !web_failures.is_empty() && web_failures.iter().all(|r| r.contains("VRF 999")),
        "{web_failures:?}"
    );
}

#[test]
fn a_shutdown_that_cannot_reach_frr_exits_70_naming_what_is_left() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt, Generation::V2);
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken");
    let wrapper = dir.path().join("vtysh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ -e {} ]; then echo 'Exiting: failed to connect to any daemons.' >&2; exit 1; fi\nexec /usr/bin/vtysh \"$@\"\n",
            broken.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = example_config(
        dir.path(),
        &emulator.url(),
        &tb.vtysh_args(),
        "\n[daemon]\nshutdown_timeout = \"2s\"\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "{ prefix = \"203.0.113.123\", vrf = \"123\" }",
        &format!(
            "{{ prefix = \"203.0.113.123\", vrf = \"123\", vtysh = {:?} }}",
            wrapper.display().to_string()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    std::fs::write(&broken, "").unwrap();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 70, "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        log.contains("203.0.113.123/32 (vrf 123)") && log.contains("remediate manually"),
        "{log}"
    );
    // The prefixes behind the working vtysh were withdrawn; only the broken one is left.
    tb.wait_peer(&["123:203.0.113.123/32"]);
    let events = journal_events(dir.path());
    assert!(matches!(
        events.last(),
        Some((_, Event::DaemonStopped(wire::DaemonStopped { outcome: wire::StopOutcome::Left(left), .. }))) if left.len() == 1
    ));
    // Clean up the leftover so the testbed goes down clean.
    std::fs::remove_file(&broken).unwrap();
}

fn status_json(config: &Path) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["status", "--json", "-c"])
        .arg(config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn service<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

#[test]
fn status_tells_configured_from_advertised_and_follows_a_flip() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = healthy_emulator(&rt, Generation::V2);
    emulator.set("web", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    // web's address is on no interface: FRR's import-check keeps it from the peer.
    let extra = format!(
        "\n[services.web]\nprefixes.frrouting = [\"198.51.100.80\"]\n\
         checks.cabourotte = [{{ name = \"web\", url = \"{}\", interval = \"200ms\" }}]\n",
        emulator.url()
    );
    let config = example_config(dir.path(), &emulator.url(), &tb.vtysh_args(), &extra);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = status_json(&config);
        if service(&status, "web")["prefixes"][0]["configured"] == true {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["daemon_running"], true);
    let dns = service(&status, "dns");
    assert_eq!(dns["state"], "healthy");
    for p in dns["prefixes"].as_array().unwrap() {
        assert_eq!(
            (p["configured"].as_bool(), p["advertised"].as_bool()),
            (Some(true), Some(true)),
            "{p}"
        );
        assert_eq!(p["established_peers"], 1);
    }
    let web = &service(&status, "web")["prefixes"][0];
    assert_eq!(
        (web["configured"].as_bool(), web["advertised"].as_bool()),
        (Some(true), Some(false)),
        "{web}"
    );
    assert!(
        web["note"].as_str().unwrap().contains("import-check"),
        "{web}"
    );

    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    tb.wait_peer(&NTP_ONLY);
    let status = status_json(&config);
    let dns = service(&status, "dns");
    assert_eq!(dns["state"], "unhealthy");
    assert!(
        dns["cause"].as_str().unwrap().contains("resolver down"),
        "{dns}"
    );
    assert!(dns["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["configured"] == false
            && p["desired_announced"] == false
            && p["drift"] == false));
    assert_eq!(dns["checks"][0]["result"], "fail");
    assert_eq!(dns["checks"][0]["reason"], "resolver down");
    assert_eq!(service(&status, "ntp")["state"], "healthy");
    let check = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // web wanted but not advertised: a warning, nothing critical; dns withdrawn as wanted is
    // one too, after the prefix's: it announces nothing.
    let (code, out) = check(&["status", "--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("ANYCASTD WARNING - web 198.51.100.80/32"),
        "{out}"
    );
    assert!(
        out.contains("; dns: nothing announced (unhealthy: "),
        "{out}"
    );

    // A prefix removed from FRR by hand is not "withdrawn on purpose": status says so.
    tb.vtysh(&[
        "configure terminal",
        "router bgp 65537 vrf 123",
        "address-family ipv4 unicast",
        "no network 203.0.113.123/32",
    ]);
    let status = status_json(&config);
    let ntp = service(&status, "ntp");
    let removed = ntp["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prefix"] == "203.0.113.123/32")
        .unwrap();
    assert_eq!(
        (
            removed["desired_announced"].as_bool(),
            removed["configured"].as_bool(),
            removed["drift"].as_bool()
        ),
        (Some(true), Some(false), Some(true)),
        "{removed}"
    );
    assert!(
        removed["note"]
            .as_str()
            .unwrap()
            .starts_with("DRIFT: wanted announced, absent in FRR; repair at the next pass"),
        "{removed}"
    );
    let (code, out) = check(&["status", "--check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.starts_with("ANYCASTD CRITICAL - ntp 203.0.113.123/32 (vrf 123): DRIFT"),
        "{out}"
    );
    let (code, out) = check(&["status", "ntp"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("ntp: healthy since "), "{out}");
    assert!(!out.contains("dns"), "only ntp: {out}");
    assert!(
        out.contains("  check ntp_v4 (cabourotte): pass since "),
        "{out}"
    );
    assert!(
        out.contains("  203.0.113.123/32 (vrf 123): DRIFT: wanted announced, absent in FRR"),
        "{out}"
    );
    assert_eq!(check(&["status", "nope"]).0, Some(2));

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0);
    let status = status_json(&config);
    assert_eq!(status["daemon_running"], false);
    let ntp = service(&status, "ntp");
    assert_eq!(ntp["state"], "draining");
    assert_eq!(ntp["state_text"], "draining (shutdown)");
    assert_eq!(ntp["drain"]["cause"], "shutdown");
    assert_eq!(
        check(&["status", "--check"]).0,
        Some(3),
        "the daemon is not running"
    );
}
