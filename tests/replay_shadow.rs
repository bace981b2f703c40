//! Shadow checks and `require` against the real daemon, with the Cabourotte emulator serving
//! check `deep` a fixed sequence of results (by request number) and check `dns` passes.
//! - With `deep` a shadow check, the service is announced throughout; `replay
//!   --with-shadow deep` of that journal gives the transitions a second run, where `deep`
//!   gates, recorded: the same transitions at the same times counted from each run's first
//!   result, and both equal a hand count over what the emulator served.
//! - With `require = "any"` and `dns` passing, `deep`'s failures never withdraw.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::audit::replay::Report;
use nix::sys::signal::Signal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};
use support::oracle::{assert_close, now_ms, verdicts};

const SCRIPT: &str = "PPFPPFFPFFFPPFFFFPFFPPPFPFFFPP";
const INTERVAL_MS: i64 = 200;

type Served = Arc<Mutex<Vec<(i64, bool)>>>;

fn scripted(rt: &tokio::runtime::Runtime) -> (Emulator, Served) {
    let served: Served = Arc::default();
    let log = served.clone();
    let lookup: support::cabourotte::Lookup = Arc::new(move |name: &str| match name {
        "dns" => Behaviour::Pass,
        "deep" => {
            let mut log = log.lock().unwrap();
            let pass = SCRIPT.as_bytes().get(log.len()).is_none_or(|c| *c == b'P');
            log.push((now_ms(), pass));
            if pass {
                Behaviour::Pass
            } else {
                Behaviour::Fail("deep check failed".into())
            }
        }
        _ => Behaviour::NotFound,
    });
    let emulator = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Emulator::serve(listener, Generation::V2, Some(lookup))
    });
    (emulator, served)
}

/// One run over the whole script with `service` lines and `deep`'s extra keys; the replay
/// without and with `what_if`, and what was served to `deep`.
fn run(service: &str, deep: &str, what_if: &[&str]) -> (Report, Report, Vec<(i64, bool)>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (emulator, served) = scripted(&rt);
    let dir = tempfile::tempdir().unwrap();
    let url = emulator.url();
    let config = one_service_config(
        dir.path(),
        &format!(
            "[{{ name = \"dns\", url = \"{url}\", interval = \"{INTERVAL_MS}ms\" }}, {{ name = \"deep\", url = \"{url}\", interval = \"{INTERVAL_MS}ms\"{deep} }}]"
        ),
        OneService {
            service,
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while served.lock().unwrap().len() < SCRIPT.len() + 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    let replay = |args: &[&str]| -> Report {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["replay", "dns", "--json"])
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let recorded = replay(&[]);
    assert!(
        recorded.divergences.is_empty(),
        "{:?}",
        recorded.divergences
    );
    // `dns` passes throughout and the verdict it forms never changes, shadow check or not:
    // its results are journaled as one edge and runs, not a record per poll.
    let history = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "dns", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let dns_records = String::from_utf8_lossy(&history.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":\"check\"") && l.contains("\"check\":\"dns\""))
        .count();
    if deep.contains("shadow") || service.contains("require") {
        assert_eq!(
            dns_records,
            1,
            "{}",
            String::from_utf8_lossy(&history.stdout)
        );
    }
    if deep.contains("shadow") {
        // history marks the shadow check's results.
        let text = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["history", "dns", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("check deep: fail: deep check failed (shadow check)"),
            "{text}"
        );
        assert!(!text.contains("check dns: pass (shadow check)"), "{text}");
    }
    let with_what_if = if what_if.is_empty() {
        recorded.clone()
    } else {
        replay(what_if)
    };
    // A check that is not a shadow check is a usage error, naming the shadow checks.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["replay", "dns", "--with-shadow", "dsn", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let known = if deep.contains("shadow") {
        "its shadow checks: deep"
    } else {
        "it has none"
    };
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "anycastd: --with-shadow dsn: not a shadow check of dns in the journal ({known})\n"
        )
    );
    let served = served.lock().unwrap().clone();
    (recorded, with_what_if, served)
}

/// By hand, rise 1 and fall 1 with `dns` always passing: `deep` decides.
fn by_hand(served: &[(i64, bool)]) -> Vec<(i64, String, String)> {
    let mut state = "starting";
    let mut out = Vec::new();
    for (at, pass) in served {
        let to = if *pass { "healthy" } else { "unhealthy" };
        if to != state {
            out.push((*at, state.to_owned(), to.to_owned()));
            state = to;
        }
    }
    out
}

fn relative(list: &[(i64, String, String)], origin: i64) -> Vec<(i64, String, String)> {
    list.iter()
        .map(|(at, f, t)| (at - origin, f.clone(), t.clone()))
        .collect()
}

#[test]
fn with_shadow_answers_what_a_live_run_with_the_check_gating_did() {
    let (shadowed, what_if, served_a) = run("", ", shadow = true", &["--with-shadow", "deep"]);
    // Announced once and never withdrawn: deep only watched.
    let recorded = verdicts(&shadowed.recorded.timeline);
    assert_eq!(
        recorded
            .iter()
            .map(|(_, f, t)| (f.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        vec![("starting", "healthy")]
    );
    let what_if = verdicts(&what_if.what_if.as_ref().unwrap().timeline);
    assert_close(
        &what_if,
        &by_hand(&served_a),
        "the what-if against the hand count",
    );

    let (gating, _, served_b) = run("", "", &[]);
    let live = verdicts(&gating.recorded.timeline);
    assert_close(
        &live,
        &by_hand(&served_b),
        "the live run against the hand count",
    );
    // The what-if of the first run is the second run, counted from each run's first result.
    assert_close(
        &relative(&what_if, served_a[0].0),
        &relative(&live, served_b[0].0),
        "the what-if against the live run",
    );
    assert!(what_if.len() >= 10, "the script flaps: {what_if:?}");
}

#[test]
fn require_any_keeps_announcing_while_one_check_passes() {
    let (report, _, served) = run("require = \"any\"\n", "", &[]);
    assert!(served.iter().any(|(_, pass)| !pass));
    let recorded = verdicts(&report.recorded.timeline);
    assert_eq!(
        recorded
            .iter()
            .map(|(_, f, t)| (f.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        vec![("starting", "healthy")],
        "{recorded:?}"
    );
}
