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

/// An emulator serving `script` to check `dns` (passes after it), logging (time, pass) of
/// each answer.
fn scripted_with(rt: &tokio::runtime::Runtime, script: &'static str) -> (Emulator, Served) {
    let served: Served = Arc::default();
    let log = served.clone();
    let lookup: support::cabourotte::Lookup = Arc::new(move |name: &str| {
        if name != "dns" {
            return Behaviour::NotFound;
        }
        let mut log = log.lock().unwrap();
        let pass = script.as_bytes().get(log.len()).is_none_or(|c| *c == b'P');
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
    run_with(
        &format!("rise = {rise}\nfall = {fall}\n"),
        SCRIPT,
        &[],
        what_if,
    )
}

/// The same with these lines under `[services.dns]`, this script, and `anycastd ARGS` run
/// (without waiting for FRR) once the emulator has served N results, for each (N, ARGS) of
/// `operator`.
fn run_with(
    service: &str,
    script: &'static str,
    operator: &[(usize, &[&str])],
    what_if: &[&str],
) -> Ran {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (emulator, served) = scripted_with(&rt, script);
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            "[{{ name = \"dns\", url = \"{}\", interval = \"{INTERVAL_MS}ms\" }}]",
            emulator.url()
        ),
        OneService {
            service,
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut actions = operator.iter();
    let mut next = actions.next();
    while served.lock().unwrap().len() < script.len() + 5 {
        if let Some((after, args)) = next {
            if served.lock().unwrap().len() >= *after {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
                    .args(*args)
                    .args(["dns", "--no-wait", "-c"])
                    .arg(&config)
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
                next = actions.next();
                continue;
            }
        }
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

/// Failures long enough to be seen (rise 1, fall 1, 200 ms a result).
const LEVEL_SCRIPT: &str = "PPPPPFFFFFPPPPPPFFFPPPPPPPFFFFFFFFPPPPP";

#[test]
fn a_what_if_with_on_unhealthy_deprefer_equals_a_live_run_that_deprefers() {
    let plain = run_with(
        "rise = 1\nfall = 1\n",
        LEVEL_SCRIPT,
        &[],
        &["--on-unhealthy", "deprefer"],
    );
    let deprefer = run_with(
        "rise = 1\nfall = 1\non_unhealthy = \"deprefer\"\ndeprefer = { as_path_prepend = 3, med = 1000 }\n",
        LEVEL_SCRIPT,
        &[],
        &[],
    );
    for report in [&plain.recorded, &plain.what_if, &deprefer.recorded] {
        assert!(report.divergences.is_empty(), "{:#?}", report.divergences);
        assert!(report.gaps.is_empty());
    }
    // The same transitions as rise 1/fall 1 over what each served, the what-if's at the times
    // of the plain run's results.
    let what_if = plain.what_if.what_if.as_ref().unwrap();
    assert_close(
        &verdicts(&what_if.timeline),
        &by_hand(&plain.served, 1, 1),
        "what-if of the plain run",
    );
    assert_close(
        &verdicts(&deprefer.recorded.recorded.timeline),
        &by_hand(&deprefer.served, 1, 1),
        "the live deprefer run",
    );
    // Figures: the plain run withdrew and was out; the live deprefer run and the what-if were
    // de-preferred instead, as long as the by-hand count says the service was unhealthy, and
    // neither withdrew.
    let expected = by_hand(&plain.served, 1, 1);
    let (_, outages, _, flaps) = figures(
        &expected,
        plain.recorded.from_ms,
        plain.recorded.to_ms,
        plain.stopped_at,
    );
    assert!(
        outages >= 3 && flaps >= 3,
        "the script withdraws a plain service"
    );
    let p = &plain.recorded.recorded.summary;
    assert_eq!((p.flaps, p.outages, p.depreferred_ms), (flaps, outages, 0));
    let unhealthy_ms = |transitions: &[(i64, String, String)], stopped_at: i64| -> i64 {
        let mut total = 0;
        let mut since = None;
        for (at, _, to) in transitions {
            if let Some(from) = since.take() {
                total += at - from;
            }
            if to == "unhealthy" {
                since = Some(*at);
            }
        }
        total + since.map_or(0, |from| stopped_at - from)
    };
    let live = &deprefer.recorded.recorded.summary;
    for (s, transitions, ran, what) in [
        (&what_if.summary, &expected, &plain, "what-if"),
        (
            live,
            &by_hand(&deprefer.served, 1, 1),
            &deprefer,
            "live deprefer run",
        ),
    ] {
        assert_eq!(
            (s.flaps, s.outages, s.outage_ms),
            (0, 0, 0),
            "{what}: {s:?}"
        );
        assert_eq!(s.mean_time_to_repair_ms, None, "{what}");
        let by_hand_ms = unhealthy_ms(transitions, ran.stopped_at);
        let slack = SERVE_SLACK_MS * (transitions.len() as i64 + 1);
        assert!(
            (s.depreferred_ms - by_hand_ms).abs() <= slack,
            "{what}: de-preferred {} ms vs {by_hand_ms} ms by hand",
            s.depreferred_ms
        );
    }
    // The what-if's figures and the live run's agree within the two runs' serving jitter.
    let slack = SERVE_SLACK_MS * (expected.len() as i64 + 1);
    assert!((what_if.summary.depreferred_ms - live.depreferred_ms).abs() <= 2 * slack);
    assert_eq!(what_if.summary.transitions, live.transitions);
    // `report` of the deprefer journal: no withdrawal, the de-preferred time apart.
    assert_eq!(deprefer.report.rows[0].summary, *live);
}

/// A healthy stretch with a drain and undrain in it, failures, then a drain that lasts to
/// the stop.
const GRACE_SCRIPT: &str = "PPPPPPPPPPPPPPPPPPPPFFFPPPPPPPPPPPPPPPPPPP";

#[test]
fn a_what_if_with_drain_grace_equals_a_live_run_with_that_grace() {
    const DRAIN: &[&str] = &["drain", "--reason", "oracle"];
    const UNDRAIN: &[&str] = &["undrain"];
    let operator: &[(usize, &[&str])] = &[(5, DRAIN), (15, UNDRAIN), (28, DRAIN)];
    let plain = run_with(
        "rise = 1\nfall = 1\n",
        GRACE_SCRIPT,
        operator,
        &["--drain-grace", "1s"],
    );
    let grace = run_with(
        "rise = 1\nfall = 1\ndrain_grace = \"1s\"\n",
        GRACE_SCRIPT,
        operator,
        &[],
    );
    for report in [&plain.recorded, &plain.what_if, &grace.recorded] {
        assert!(report.divergences.is_empty(), "{:#?}", report.divergences);
    }
    let what_if = plain.what_if.what_if.as_ref().unwrap();
    let live = &grace.recorded.recorded;
    // The same steps (transitions and the graces' ends), each at the same time from its run's
    // first drain (the drains came at a moment of each run's own; a verdict within a poll's
    // jitter of its result, a grace's end exactly 1 s after its drain in the what-if and
    // within the daemon's timer jitter in the live run).
    let steps = |run: &anycastd::audit::replay::Run| -> Vec<(i64, String, String, String)> {
        let origin = run
            .timeline
            .iter()
            .find(|s| s.to.starts_with("draining"))
            .unwrap()
            .at_ms;
        run.timeline
            .iter()
            .map(|s| {
                (
                    s.at_ms - origin,
                    s.kind.clone(),
                    s.from.clone(),
                    s.to.clone(),
                )
            })
            .collect()
    };
    let (a, b) = (steps(what_if), steps(live));
    assert_eq!(
        a.iter().map(|s| (&s.1, &s.2, &s.3)).collect::<Vec<_>>(),
        b.iter().map(|s| (&s.1, &s.2, &s.3)).collect::<Vec<_>>(),
        "the same steps"
    );
    // Each grace ends 1 s after its drain: exactly in the what-if, within the daemon's timer
    // jitter in the live run.
    let graces = |run: &anycastd::audit::replay::Run| -> Vec<i64> {
        let mut drained_at = None;
        let mut graces = Vec::new();
        for step in &run.timeline {
            if step.kind == "transition" && step.to.starts_with("draining") {
                drained_at = Some(step.at_ms);
            } else if step.kind == "grace-ended" {
                graces.push(step.at_ms - drained_at.unwrap());
            }
        }
        graces
    };
    assert_eq!(graces(what_if), [1_000, 1_000], "{a:?}");
    let live_graces = graces(live);
    assert_eq!(live_graces.len(), 2, "{b:?}");
    for grace in live_graces {
        assert!((grace - 1_000).abs() <= 2 * SERVE_SLACK_MS, "{b:?}");
    }
    // Figures: 1 s of grace per drain of an announced service in the what-if (exactly) and the
    // live run (within its timer's jitter); none in the plain run, whose drains withdrew.
    assert_eq!(what_if.summary.grace_ms, 2_000, "{:?}", what_if.summary);
    assert!(
        (live.summary.grace_ms - 2_000).abs() <= 2 * SERVE_SLACK_MS,
        "{:?}",
        live.summary
    );
    assert_eq!(plain.recorded.recorded.summary.grace_ms, 0);
    assert_eq!(
        what_if.summary.drained_ms + what_if.summary.grace_ms,
        plain.recorded.recorded.summary.drained_ms
    );
    assert_eq!(grace.report.rows[0].summary, live.summary);
}
