//! Postmortem replay: a property test (random observation sequences recorded by the journal's
//! rule replay to exactly the live transitions), a golden replay of a checked-in flap storm
//! with a what-if, and the real daemon's journal replayed without divergence, across a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::replay::{replay, WhatIf};
use anycastd_fsm::{Input, Machine, Observation, Params, Timer, Timestamp};
use anycastd_journal::wire::{self, Event};
use anycastd_journal::{Journal, Options, Record};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

fn service_params(rise: u32, fall: u32, checks: usize) -> wire::ServiceParams {
    wire::ServiceParams {
        name: "dns".into(),
        rise,
        fall,
        checks: (0..checks)
            .map(|i| wire::CheckParams {
                kind: "cabourotte".into(),
                url: "http://127.0.0.1:9013".into(),
                name: format!("c{i}"),
                interval_ms: 1000,
                timeout_ms: 1000,
                pending_timeout_ms: 10_000,
                max_age_ms: None,
            })
            .collect(),
        prefixes: vec![],
    }
}

/// A live service recorded the way the driver journals it: an observation record on an edge,
/// a transition or a change of the verdict formed (with the count of results since the last
/// record), a pending-timeout record when a timeout formed a verdict or changed it, the
/// trailing count at the stop.
struct Recorder {
    machine: Machine,
    names: Vec<String>,
    last: Vec<Option<Observation>>,
    unrecorded: u64,
    last_verdict: Option<Option<bool>>,
    reuse_at: Option<i64>,
    expiry_at: Option<i64>,
    records: Vec<Record>,
    transitions: Vec<anycastd_fsm::Transition>,
}

impl Recorder {
    fn new(params: &wire::ServiceParams) -> Recorder {
        Recorder::with_damping(params, None)
    }

    fn with_damping(
        params: &wire::ServiceParams,
        damping: Option<anycastd_fsm::Damping>,
    ) -> Recorder {
        let p = Params {
            damping: damping.clone(),
            rise: params.rise,
            fall: params.fall,
            pending_timeouts: params
                .checks
                .iter()
                .map(|c| Duration::from_millis(c.pending_timeout_ms))
                .collect(),
        };
        let (machine, _) = Machine::new(p, Timestamp(0));
        let mut r = Recorder {
            machine,
            names: params.checks.iter().map(|c| c.name.clone()).collect(),
            last: vec![None; params.checks.len()],
            unrecorded: 0,
            last_verdict: None,
            reuse_at: None,
            expiry_at: None,
            records: vec![],
            transitions: vec![],
        };
        r.push(
            0,
            Event::DaemonStarted(wire::DaemonStarted {
                version: "t".into(),
                pid: 1,
                config_hash: "h".into(),
                boot_id: "b".into(),
                services: vec![params.clone()],
            }),
        );
        if let Some(d) = &damping {
            r.push(
                0,
                Event::ServiceDamping(wire::ServiceDamping {
                    service: "dns".into(),
                    params: Some(d.into()),
                }),
            );
        }
        r
    }

    fn damping_event(&self) -> Event {
        let d = self.machine.damping();
        Event::Damping(wire::DampingRecord {
            service: "dns".into(),
            penalty_milli: d.penalty_milli,
            at_ms: d.at.0,
            suppressed_since_ms: d.suppressed_since.map(|t| t.0),
            restored: false,
        })
    }

    fn polls_event(&mut self) -> Option<Event> {
        (self.unrecorded > 0).then(|| {
            let polls = std::mem::take(&mut self.unrecorded);
            Event::Polls(wire::Polls {
                service: "dns".into(),
                polls,
            })
        })
    }

    /// A timer or operator input: journaled after the results counted before it.
    fn other(&mut self, at: i64, input: Input, operator: Option<Event>) {
        if let Some(op) = operator {
            if let Some(p) = self.polls_event() {
                self.push(at, p);
            }
            self.push(at, op);
        }
        let before = self.machine.damping();
        let step = self.machine.step(input);
        let damping_changed = self.machine.damping() != before;
        if step.transition.is_some() || damping_changed {
            if let Some(p) = self.polls_event() {
                self.push(at, p);
            }
        }
        if let Some(t) = step.transition {
            let event = self.transition_event(&t);
            self.push(at, event);
            self.transitions.push(t);
        }
        if damping_changed {
            let event = self.damping_event();
            self.push(at, event);
        }
        self.arm(&step.actions);
    }

    fn arm(&mut self, actions: &[anycastd_fsm::Action]) {
        for a in actions {
            if let anycastd_fsm::Action::ArmTimer { timer, deadline } = a {
                match timer {
                    Timer::DampingReuse => self.reuse_at = Some(deadline.0),
                    Timer::DrainExpiry => self.expiry_at = Some(deadline.0),
                    _ => {}
                }
            }
        }
    }

    /// Fire the timers due by `at`, as the driver does.
    fn fire_due(&mut self, at: i64) {
        if let Some(due) = self.reuse_at.filter(|d| *d <= at) {
            self.reuse_at = None;
            self.other(
                due,
                Input::TimerFired {
                    timer: Timer::DampingReuse,
                    at: Timestamp(due),
                },
                None,
            );
        }
        if let Some(due) = self.expiry_at.filter(|d| *d <= at) {
            self.expiry_at = None;
            self.other(
                due,
                Input::TimerFired {
                    timer: Timer::DrainExpiry,
                    at: Timestamp(due),
                },
                None,
            );
        }
    }

    fn push(&mut self, at: i64, event: Event) {
        let seq = self.records.len() as u64 + 1;
        self.records.push(Record {
            seq,
            at_ms: at,
            event,
        });
    }

    fn transition_event(&self, t: &anycastd_fsm::Transition) -> Event {
        Event::Transition(wire::Transition {
            service: "dns".into(),
            from: (&t.from).into(),
            to: (&t.to).into(),
            cause: wire::Cause::from_fsm(&t.cause, &self.names),
            healthy_streak: t.counters.healthy_streak,
            unhealthy_streak: t.counters.unhealthy_streak,
            change: if t.to.announces() {
                wire::Change::Announce
            } else {
                wire::Change::Withdraw
            },
            prefixes: vec![],
        })
    }

    fn observe(&mut self, at: i64, check: usize, observation: Observation) {
        let edge = self.last[check].as_ref() != Some(&observation);
        self.last[check] = Some(observation.clone());
        let before = self.machine.damping();
        let step = self.machine.step(Input::Observed {
            check,
            observation: observation.clone(),
            at: Timestamp(at),
        });
        let damping_changed = self.machine.damping() != before;
        self.arm(&step.actions);
        let verdict_changed = self.last_verdict.is_some_and(|v| v != step.verdict);
        self.last_verdict = Some(step.verdict);
        if edge || step.transition.is_some() || verdict_changed {
            let event = Event::CheckEdge(wire::CheckEdge {
                service: "dns".into(),
                check: self.names[check].clone(),
                observation: (&observation).into(),
                polls_since_last_edge: self.unrecorded,
            });
            self.unrecorded = 0;
            self.push(at, event);
        } else {
            self.unrecorded += 1;
        }
        if let Some(t) = step.transition {
            let event = self.transition_event(&t);
            self.push(at, event);
            self.transitions.push(t);
        }
        if damping_changed {
            let event = self.damping_event();
            self.push(at, event);
        }
    }

    fn timeout(&mut self, at: i64, check: usize) {
        let step = self.machine.step(Input::TimerFired {
            timer: Timer::PendingTimeout(check),
            at: Timestamp(at),
        });
        let verdict_changed = self.last_verdict.is_some_and(|v| v != step.verdict);
        self.last_verdict = Some(step.verdict);
        if step.verdict.is_some() || verdict_changed {
            let event = Event::PendingTimeout(wire::PendingTimeout {
                service: "dns".into(),
                check: self.names[check].clone(),
                polls_since_last_edge: self.unrecorded,
            });
            self.unrecorded = 0;
            self.push(at, event);
        }
        if let Some(t) = step.transition {
            let event = self.transition_event(&t);
            self.push(at, event);
            self.transitions.push(t);
        }
    }

    fn stop(&mut self, at: i64) {
        if self.unrecorded > 0 {
            let polls = self.unrecorded;
            self.push(
                at,
                Event::Polls(wire::Polls {
                    service: "dns".into(),
                    polls,
                }),
            );
            self.unrecorded = 0;
        }
        let step = self.machine.step(Input::Drain {
            cause: anycastd_fsm::DrainCause::Shutdown,
            at: Timestamp(at),
        });
        if let Some(t) = step.transition {
            let event = self.transition_event(&t);
            self.push(at, event);
            self.transitions.push(t);
        }
        self.push(
            at,
            Event::DaemonStopped(wire::DaemonStopped {
                reason: "SIGTERM".into(),
                outcome: wire::StopOutcome::WithdrawnAll,
            }),
        );
    }
}

/// xorshift64*: a small deterministic generator, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn for_random_observation_sequences_replay_reproduces_the_live_transitions_exactly() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let rise = 1 + rng.below(3) as u32;
        let fall = 1 + rng.below(3) as u32;
        let checks = 1 + rng.below(3) as usize;
        let params = service_params(rise, fall, checks);
        let mut live = Recorder::new(&params);
        let mut at = 0;
        for _ in 0..(50 + rng.below(400)) {
            at += 1 + rng.below(3_000) as i64;
            let check = rng.below(checks as u64) as usize;
            match rng.below(20) {
                0 => live.timeout(at, check),
                1 | 2 => live.observe(at, check, Observation::Pending),
                3..=7 => live.observe(at, check, Observation::Fail(format!("e{}", rng.below(2)))),
                _ => live.observe(at, check, Observation::Pass),
            }
        }
        live.stop(at + 1);
        let report = replay("dns", &live.records, None, None, &WhatIf::default());
        assert!(
            report.divergences.is_empty(),
            "seed {seed}: {:?}",
            report.divergences
        );
        assert_eq!(report.verified, live.transitions.len(), "seed {seed}");
        assert!(report.gaps.is_empty());
        // A what-if with the recorded parameters is the recorded run.
        let same = replay(
            "dns",
            &live.records,
            None,
            None,
            &WhatIf {
                rise: Some(rise),
                fall: Some(fall),
                damping: None,
            },
        );
        assert_eq!(
            same.what_if.unwrap().timeline,
            report.recorded.timeline,
            "seed {seed}"
        );
    }
}

#[test]
fn a_crash_is_a_gap_not_a_divergence() {
    let params = service_params(1, 1, 1);
    let mut live = Recorder::new(&params);
    live.observe(1_000, 0, Observation::Pass);
    live.observe(2_000, 0, Observation::Fail("x".into()));
    // Killed here: no stop record. A new start follows.
    let mut records = live.records.clone();
    let mut second = Recorder::new(&params);
    second.observe(60_000, 0, Observation::Pass);
    second.stop(61_000);
    for mut r in second.records {
        r.seq += 100;
        r.at_ms += 50_000;
        records.push(r);
    }
    let report = replay("dns", &records, None, None, &WhatIf::default());
    assert!(report.divergences.is_empty(), "{:?}", report.divergences);
    assert_eq!(report.gaps.len(), 1);
    assert_eq!(report.gaps[0].from_ms, 2_000);
}

#[test]
fn a_hand_edited_journal_is_reported_as_a_divergence() {
    let params = service_params(1, 1, 1);
    let mut live = Recorder::new(&params);
    live.observe(1_000, 0, Observation::Pass);
    live.observe(2_000, 0, Observation::Fail("x".into()));
    live.stop(3_000);
    // Someone turns the failure into a pass.
    let mut records = live.records.clone();
    for r in &mut records {
        if let Event::CheckEdge(e) = &mut r.event {
            if e.observation != wire::Observation::Pass {
                e.observation = wire::Observation::Pass;
            }
        }
    }
    let report = replay("dns", &records, None, None, &WhatIf::default());
    assert!(!report.divergences.is_empty());
}

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flap-storm")
}

/// The flap storm: dns (one check, rise 1, fall 1, 1 s interval) healthy, then 24 failure
/// episodes lasting 1, 2, 5, 1, 2, 5, ... results, 20 s apart, then a clean stop.
fn flap_storm() -> Vec<Record> {
    let mut live = Recorder::new(&service_params(1, 1, 1));
    let base = 1_795_500_000_000;
    for r in &mut live.records {
        r.at_ms = base;
    }
    let mut at = base + 1_000;
    live.observe(at, 0, Observation::Pass);
    for episode in 0..24 {
        for _ in 0..10 {
            at += 1_000;
            live.observe(at, 0, Observation::Pass);
        }
        let length = [1, 2, 5][episode % 3];
        for _ in 0..length {
            at += 1_000;
            live.observe(at, 0, Observation::Fail("resolver timeout".into()));
        }
        for _ in 0..(10 - length) {
            at += 1_000;
            live.observe(at, 0, Observation::Pass);
        }
    }
    live.stop(at + 1_000);
    live.records
}

#[test]
#[ignore = "writes the checked-in flap-storm journal"]
fn write_the_flap_storm_fixture() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut journal = Journal::open(&dir, &Options::default()).unwrap();
        for r in flap_storm() {
            journal.append(r.at_ms, &[r.event]).unwrap();
        }
        journal.flush().unwrap();
    }
    std::fs::remove_file(dir.join(anycastd_journal::LOCK_FILE)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn anycastd(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn offline_config(dir: &Path, journal: &Path) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[control]\nsocket = {:?}\n[services.dns]\nprefixes.frrouting = [\"203.0.113.53\"]\nchecks.cabourotte = [\"c0\"]\n",
            journal.display().to_string(),
            dir.join("ctl.sock").display().to_string()
        ),
    )
    .unwrap();
    config
}

#[test]
fn the_flap_storm_replays_to_its_golden_timeline_and_fall_3_shows_fewer_flaps() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_dir(&fixture_dir(), &journal);
    let config = offline_config(dir.path(), &journal);
    let (code, out, err) = anycastd(&["replay", "dns", "--fall", "3"], &config);
    assert_eq!(code, 0, "{err}");
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/replay/flap-storm-fall-3.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &out).unwrap();
    }
    assert_eq!(out, std::fs::read_to_string(&golden).unwrap());
    let (_, json, _) = anycastd(&["replay", "dns", "--fall", "3", "--json"], &config);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["recorded"]["summary"]["flaps"], 24);
    assert_eq!(
        report["what_if"]["summary"]["flaps"], 8,
        "only the 5-result episodes reach fall 3"
    );
    assert_eq!(report["divergences"].as_array().unwrap().len(), 0);

    // Bad input.
    assert_eq!(anycastd(&["replay", "nope"], &config).0, 2);
    assert_eq!(anycastd(&["replay", "dns", "--fall", "0"], &config).0, 2);
    assert_eq!(
        anycastd(
            &["replay", "dns", "--since", "1h", "--until", "2h"],
            &config
        )
        .0,
        2
    );
    let (code, _, err) = anycastd(
        &[
            "replay",
            "dns",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2000-01-02T00:00:00Z",
        ],
        &config,
    );
    assert_eq!(code, 0);
    assert!(err.contains("no transitions"), "{err}");
}

#[test]
fn the_real_daemons_journal_replays_without_divergence_across_a_crash() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            "[\n {{ name = \"a\", url = \"{u}\", interval = \"20ms\" }},\n {{ name = \"b\", url = \"{u}\", interval = \"30ms\" }},\n]",
            u = emulator.url()
        ),
        OneService {
            service: "rise = 2\nfall = 2\n",
            ..OneService::default()
        },
    );
    let flap = |emulator: &Emulator, seed: u64| {
        let mut rng = Rng(seed);
        for _ in 0..60 {
            for check in ["a", "b"] {
                let behaviour = match rng.below(6) {
                    0 => Behaviour::Status(500),
                    1 => Behaviour::NotFound,
                    2 => Behaviour::Fail("down".into()),
                    _ => Behaviour::Pass,
                };
                emulator.set(check, behaviour);
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    };
    let mut first = Daemon::start(&config, &dir.path().join("log1"));
    first.wait_log("Starting service");
    flap(&emulator, 7);
    first.signal(Signal::SIGKILL);
    first.wait(Duration::from_secs(30));
    let mut second = Daemon::start(&config, &dir.path().join("log2"));
    second.wait_log("Starting service");
    flap(&emulator, 11);
    // Replay through the socket while the daemon runs...
    let (code, out, err) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0, "{err}");
    let running: serde_json::Value = serde_json::from_str(&out).unwrap();
    second.signal(Signal::SIGTERM);
    assert_eq!(second.wait(Duration::from_secs(30)), 0);
    // ... and directly from the journal once it stopped.
    let (code, out, err) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0, "{err}");
    let stopped: serde_json::Value = serde_json::from_str(&out).unwrap();
    for report in [&running, &stopped] {
        assert_eq!(
            report["divergences"].as_array().unwrap().len(),
            0,
            "{report:#}"
        );
        assert_eq!(
            report["gaps"].as_array().unwrap().len(),
            1,
            "the SIGKILL is a gap"
        );
    }
    assert!(stopped["verified"].as_u64().unwrap() >= 4, "{stopped:#}");
    let (_, text, _) = anycastd(&["replay", "dns"], &config);
    assert!(text.contains("the re-run reproduces all"), "{text}");
    assert!(text.contains("gap: the daemon was killed"), "{text}");
}

#[test]
fn with_damping_drains_and_timers_replay_reproduces_transitions_and_penalties_bit_for_bit() {
    let (mut suppressions, mut unsuppressions, mut expiries) = (0, 0, 0);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0xd1b5_4a32_d192_ed03) | 1);
        let params = service_params(
            1 + rng.below(2) as u32,
            1 + rng.below(2) as u32,
            1 + rng.below(2) as usize,
        );
        let damping = anycastd_fsm::Damping {
            penalty: 1000,
            suppress: 1500 + rng.below(1000) as u32,
            reuse: 500 + rng.below(500) as u32,
            half_life: Duration::from_millis(5_000 + rng.below(20_000)),
            max_suppress: Duration::from_millis(30_000 + rng.below(60_000)),
        };
        let mut live = Recorder::with_damping(&params, Some(damping));
        let checks = params.checks.len() as u64;
        let mut at = 0;
        for _ in 0..(100 + rng.below(400)) {
            at += 1 + rng.below(4_000) as i64;
            live.fire_due(at);
            let check = rng.below(checks) as usize;
            match rng.below(30) {
                0 => {
                    let expires_at = (rng.below(2) == 0).then(|| at + rng.below(20_000) as i64);
                    let operator = Event::Operator(wire::OperatorAction {
                        kind: wire::OperatorKind::Drain {
                            service: "dns".into(),
                            reason: "r".into(),
                            expires_at_ms: expires_at,
                        },
                        uid: 0,
                        pid: 1,
                    });
                    let cause = anycastd_fsm::DrainCause::Operator {
                        reason: "r".into(),
                        expires_at: expires_at.map(Timestamp),
                        uid: 0,
                    };
                    live.other(
                        at,
                        Input::Drain {
                            cause,
                            at: Timestamp(at),
                        },
                        Some(operator),
                    );
                }
                1 => {
                    let operator = Event::Operator(wire::OperatorAction {
                        kind: wire::OperatorKind::Undrain {
                            service: "dns".into(),
                        },
                        uid: 0,
                        pid: 1,
                    });
                    live.other(at, Input::Undrain { at: Timestamp(at) }, Some(operator));
                }
                2 => live.timeout(at, check),
                3..=12 => live.observe(at, check, Observation::Fail("x".into())),
                _ => live.observe(at, check, Observation::Pass),
            }
        }
        live.stop(at + 1);
        let report = replay("dns", &live.records, None, None, &WhatIf::default());
        assert!(
            report.divergences.is_empty(),
            "seed {seed}: {:?}",
            report.divergences
        );
        assert_eq!(report.verified, live.transitions.len(), "seed {seed}");
        for r in &live.records {
            match &r.event {
                Event::Damping(d) if d.suppressed_since_ms.is_some() => suppressions += 1,
                Event::Transition(t) if t.cause == wire::Cause::Unsuppressed => unsuppressions += 1,
                Event::Transition(t) if t.cause == wire::Cause::DrainExpired => expiries += 1,
                _ => {}
            }
        }
    }
    // The sequences do reach the interesting cases.
    assert!(
        suppressions > 50 && unsuppressions > 10 && expiries > 10,
        "{suppressions} {unsuppressions} {expiries}"
    );
}

#[test]
fn a_journal_of_the_first_format_version_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("journal/tests/fixtures/journal-v1"),
        &journal,
    );
    let config = offline_config(dir.path(), &journal);
    let (code, out, err) = anycastd(&["replay", "dns"], &config);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("replay of dns from"), "{out}");
    let (code, out, _) = anycastd(&["replay", "dns", "--json"], &config);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The fixture is one record of every kind, not a consistent run: its transitions are
    // all accounted for, as verified or as divergences.
    let transitions = report["recorded"]["timeline"].as_array().unwrap().len();
    assert!(transitions >= 2, "{report:#}");
}

#[test]
fn a_suppression_restored_after_a_crash_replays_exactly() {
    let params = service_params(1, 1, 1);
    let damping = anycastd_fsm::Damping {
        penalty: 1000,
        suppress: 1500,
        reuse: 750,
        half_life: Duration::from_secs(4),
        max_suppress: Duration::from_secs(16),
    };
    let mut live = Recorder::with_damping(&params, Some(damping.clone()));
    live.observe(1_000, 0, Observation::Pass);
    live.observe(1_400, 0, Observation::Fail("flap".into()));
    live.observe(2_000, 0, Observation::Pass);
    live.observe(2_400, 0, Observation::Fail("flap".into()));
    assert!(live.machine.suppressed());
    let saved = live.machine.damping();
    // Killed. The next start: reset to Starting, damping restored, checks pass, the timer fires.
    let mut second = Recorder::with_damping(&params, Some(damping));
    second.records.clear();
    second.push(
        6_000,
        Event::DaemonStarted(wire::DaemonStarted {
            version: "t".into(),
            pid: 2,
            config_hash: "h".into(),
            boot_id: "b".into(),
            services: vec![params.clone()],
        }),
    );
    second.push(
        6_000,
        Event::ServiceDamping(wire::ServiceDamping {
            service: "dns".into(),
            params: Some((&live.machine.params().damping.clone().unwrap()).into()),
        }),
    );
    second.push(
        6_001,
        Event::Transition(wire::Transition {
            service: "dns".into(),
            from: wire::State::Unhealthy,
            to: wire::State::Starting,
            cause: wire::Cause::Restart,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: wire::Change::Withdraw,
            prefixes: vec![],
        }),
    );
    let actions = second.machine.restore_damping(saved);
    second.arm(&actions);
    let restored = match second.damping_event() {
        Event::Damping(mut d) => {
            d.restored = true;
            Event::Damping(d)
        }
        _ => unreachable!(),
    };
    second.push(6_002, restored);
    for i in 0..5 {
        second.observe(6_100 + i * 200, 0, Observation::Pass);
    }
    let due = second.reuse_at.unwrap();
    second.fire_due(due);
    assert_eq!(second.machine.state(), &anycastd_fsm::State::Healthy);
    second.stop(due + 100);
    let mut records = live.records.clone();
    for mut r in second.records {
        r.seq += 1000;
        records.push(r);
    }
    let report = replay("dns", &records, None, None, &WhatIf::default());
    assert!(report.divergences.is_empty(), "{:#?}", report.divergences);
}
