//! The replay oracle against the real daemon: the Cabourotte emulator serves one fixed
//! sequence of results (by request number), and the daemon runs twice on it, once with rise 1
//! and fall 1, once with rise 2 and fall 3.
//! - `replay --rise 2 --fall 3` of the first run's journal gives the second run's recorded
//!   transitions, at the same times counted from each run's first result (within a poll's
//!   jitter);
//! - each run's recorded transitions, and the what-if's, equal what a small hand-written
//!   rise/fall count over the results the emulator served gives, and so do the summary
//!   figures (announced time, outages, flaps), within the few milliseconds between a poll's
//!   grid point and the moment the emulator served it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::audit::replay::Report;
use nix::sys::signal::Signal;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};
use support::oracle::{assert_close, now_ms, verdicts, SERVE_SLACK_MS};

/// The results, by request number: runs of failures of 1 to 4 between runs of passes of 1
/// to 4; passes after it.
const SCRIPT: &str = "PPPFPPFFPFFFPPFFFFPFFPPPFPFFFPPPPFPPFFFP";
const INTERVAL_MS: i64 = 200;

type Served = Arc<Mutex<Vec<(i64, bool)>>>;

/// An emulator serving SCRIPT to check `dns`, logging (time, pass) of each answer.
fn scripted(rt: &tokio::runtime::Runtime) -> (Emulator, Served) {
    let served: Served = Arc::default();
    let log = served.clone();
    let lookup: support::cabourotte::Lookup = Arc::new(move |name: &str| {
        if name != "dns" {
            return Behaviour::NotFound;
        }
        let mut log = log.lock().unwrap();
        let pass = SCRIPT.as_bytes().get(log.len()).is_none_or(|c| *c == b'P');
        log.push((now_ms(), pass));
        if pass {
            Behaviour::Pass
        } else {
            Behaviour::Fail("resolver down".into())
        }
    });
    let emulator = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Emulator::serve(listener, Generation::V2, Some(lookup))
    });
    (emulator, served)
}

/// What one run gives: the journal's replay as recorded and with the what-if options, what
/// was served, `report` over the journal, and when the test sent SIGTERM.
struct Ran {
    recorded: Report,
    what_if: Report,
    served: Vec<(i64, bool)>,
    report: anycastd::audit::report::Report,
    stopped_at: i64,
}

/// One run of the daemon over the whole script, stopped with SIGTERM (which withdraws: the
/// time after it is drained, not announced).
fn run(rise: u32, fall: u32, what_if: &[&str]) -> Ran {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (emulator, served) = scripted(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            "[{{ name = \"dns\", url = \"{}\", interval = \"{INTERVAL_MS}ms\" }}]",
            emulator.url()
        ),
        OneService {
            service: &format!("rise = {rise}\nfall = {fall}\n"),
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
    let stopped_at = now_ms();
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
    let with_what_if = replay(what_if);
    let served = served.lock().unwrap().clone();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["report", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = serde_json::from_slice(&out.stdout).unwrap();
    Ran {
        recorded,
        what_if: with_what_if,
        served,
        report,
        stopped_at,
    }
}

/// By hand: the transitions rise/fall give over the served results.
fn by_hand(served: &[(i64, bool)], rise: u32, fall: u32) -> Vec<(i64, String, String)> {
    let mut state = "starting";
    let (mut passes, mut fails) = (0, 0);
    let mut out = Vec::new();
    for (at, pass) in served {
        if *pass {
            passes += 1;
            fails = 0;
        } else {
            fails += 1;
            passes = 0;
        }
        let to = match (state, *pass) {
            ("starting", true) if passes >= rise => "healthy",
            ("starting", false) => "unhealthy",
            ("healthy", false) if fails >= fall => "unhealthy",
            ("unhealthy", true) if passes >= rise => "healthy",
            _ => continue,
        };
        out.push((*at, state.to_owned(), to.to_owned()));
        state = to;
    }
    out
}

/// By hand: announced time and outages in `[from, to]` for these transitions, when the
/// daemon was told to stop at `stopped_at` (the shutdown withdraws: nothing is announced
/// from then on).
fn figures(
    transitions: &[(i64, String, String)],
    from: i64,
    to: i64,
    stopped_at: i64,
) -> (i64, usize, i64, usize) {
    let mut announced = 0;
    let mut outages = Vec::new();
    let mut state = ("starting".to_owned(), from);
    for (at, _, next) in transitions.iter().chain(std::iter::once(&(
        stopped_at.min(to),
        String::new(),
        "stopped".into(),
    ))) {
        match state.0.as_str() {
            "healthy" => announced += at - state.1,
            "unhealthy" => outages.push(at - state.1),
            _ => {}
        }
        state = (next.clone(), *at);
    }
    let flaps = transitions
        .iter()
        .filter(|(_, f, t)| f == "healthy" && t == "unhealthy")
        .count();
    (
        announced,
        outages.len(),
        outages.into_iter().max().unwrap_or(0),
        flaps,
    )
}

fn assert_figures(
    report: &Report,
    run: &anycastd::audit::replay::Run,
    expected: &[(i64, String, String)],
    stopped_at: i64,
    what: &str,
) {
    let (announced, outages, longest, flaps) =
        figures(expected, report.from_ms, report.to_ms, stopped_at);
    let s = &run.summary;
    let slack = SERVE_SLACK_MS * (expected.len() as i64 + 1);
    assert_eq!(s.measured_ms, report.to_ms - report.from_ms, "{what}");
    assert!(
        (s.announced_ms - announced).abs() <= slack,
        "{what}: announced {} vs {announced}",
        s.announced_ms
    );
    assert_eq!(s.outages, outages, "{what}");
    assert!(
        (s.longest_outage_ms - longest).abs() <= 2 * SERVE_SLACK_MS,
        "{what}: longest {} vs {longest}",
        s.longest_outage_ms
    );
    assert_eq!(s.flaps, flaps, "{what}");
}

#[test]
fn a_what_if_of_the_real_daemons_journal_equals_a_live_run_with_those_settings() {
    let one = run(1, 1, &["--rise", "2", "--fall", "3"]);
    let two = run(2, 3, &[]);
    let (first, first_what_if, second) = (&one.recorded, &one.what_if, &two.recorded);
    for report in [first, first_what_if, second] {
        assert!(report.divergences.is_empty(), "{:#?}", report.divergences);
        assert!(report.gaps.is_empty());
    }

    // Each recorded run is what rise/fall give over what was served.
    let first_recorded = verdicts(&first.recorded.timeline);
    assert_close(
        &first_recorded,
        &by_hand(&one.served, 1, 1),
        "run 1 (rise 1, fall 1)",
    );
    let second_recorded = verdicts(&second.recorded.timeline);
    assert_close(
        &second_recorded,
        &by_hand(&two.served, 2, 3),
        "run 2 (rise 2, fall 3)",
    );

    // The what-if of run 1 is run 2, counted from each run's first result.
    let what_if = first_what_if.what_if.as_ref().unwrap();
    let what_if_verdicts = verdicts(&what_if.timeline);
    let shift = |list: &[(i64, String, String)], origin: i64| -> Vec<(i64, String, String)> {
        list.iter()
            .map(|(at, f, t)| (at - origin, f.clone(), t.clone()))
            .collect()
    };
    assert_close(
        &shift(&what_if_verdicts, one.served[0].0),
        &shift(&second_recorded, two.served[0].0),
        "what-if of run 1 vs run 2",
    );
    assert!(
        what_if_verdicts.len() >= 6,
        "the script flaps under rise 2/fall 3 too"
    );
    assert!(
        what_if.summary.flaps < first.recorded.summary.flaps,
        "fall 3 rides out the short failures"
    );

    // And it is what rise 2 / fall 3 give over run 1's results, figures included.
    let expected = by_hand(&one.served, 2, 3);
    assert_close(&what_if_verdicts, &expected, "what-if of run 1 by hand");
    assert_figures(
        first_what_if,
        what_if,
        &expected,
        one.stopped_at,
        "what-if figures",
    );
    assert_figures(
        first,
        &first.recorded,
        &by_hand(&one.served, 1, 1),
        one.stopped_at,
        "run 1 figures",
    );
    assert_figures(
        second,
        &second.recorded,
        &by_hand(&two.served, 2, 3),
        two.stopped_at,
        "run 2 figures",
    );

    // `report` over the same journals: the same window and figures as replay's recorded
    // runs, and so the by-hand figures over what was served.
    for (ran, rise, fall) in [(&one, 1, 1), (&two, 2, 3)] {
        let (report, replayed) = (&ran.report, &ran.recorded);
        assert_eq!(report.rows.len(), 1);
        assert_eq!(report.rows[0].service, "dns");
        assert_eq!(
            (report.from_ms, report.to_ms),
            (replayed.from_ms, replayed.to_ms)
        );
        assert_eq!(report.rows[0].summary, replayed.recorded.summary);
        let run = anycastd::audit::replay::Run {
            summary: report.rows[0].summary.clone(),
            ..anycastd::audit::replay::Run::default()
        };
        assert_figures(
            replayed,
            &run,
            &by_hand(&ran.served, rise, fall),
            ran.stopped_at,
            "report figures",
        );
    }
}

#[test]
fn the_scripts_by_hand_count_is_right() {
    // The oracle's own arithmetic on a case done on paper: P F F F P P, rise 2, fall 3.
    let served: Vec<(i64, bool)> = [true, false, false, false, true, true]
        .iter()
        .enumerate()
        .map(|(i, p)| (i as i64 * 1000, *p))
        .collect();
    assert_eq!(
        by_hand(&served, 2, 3),
        [
            (1000, "starting".into(), "unhealthy".into()),
            (5000, "unhealthy".into(), "healthy".into()),
        ]
        .to_vec(),
        "starting goes unhealthy at the first failure"
    );
}
