//! Journals written by format versions 1, 2, 3 and 6 are checked in
//! (`tests/fixtures/journal-v1`, `journal-v2`, `journal-v3`, `journal-v6`); every later build must still
//! decode them, record for record. Write a fixture only when adding its format version, never
//! again: `cargo test -p anycastd-journal --test fixture write_the_v3 -- --ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_journal::wire::*;
use anycastd_journal::{Entry, Journal, Options};
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1")
}

fn fixture_v2_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v2")
}

fn fixture_v3_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v3")
}

fn fixture_v6_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v6")
}

/// Format 6 (graded announcements): version 3's records, then the levels of a de-preferred
/// service and of a drain in its grace, and the transition that ends the grace.
fn events_v6() -> Vec<Event> {
    let mut events = events_v3();
    let draining = State::Draining(DrainCause::Operator {
        reason: "maintenance".into(),
        expires_at_ms: None,
        uid: 0,
    });
    events.extend([
        Event::Level(LevelRecord {
            service: "dns".into(),
            level: Some(Level::Depreferred),
            attributes: Attributes {
                as_path_prepend: 3,
                med: Some(1000),
                communities: vec![65000 << 16 | 666],
                large_communities: vec![(65000, 1, 666)],
            },
            grace_until_ms: None,
        }),
        Event::Level(LevelRecord {
            service: "dns".into(),
            level: Some(Level::GracefulShutdown),
            attributes: Attributes {
                as_path_prepend: 3,
                med: Some(1000),
                communities: vec![65000 << 16 | 666, 0xffff_0000],
                large_communities: vec![],
            },
            grace_until_ms: Some(1_795_700_030_000),
        }),
        Event::Transition(Transition {
            service: "dns".into(),
            from: draining.clone(),
            to: draining,
            cause: Cause::GraceEnded,
            healthy_streak: 4,
            unhealthy_streak: 0,
            change: Change::Withdraw,
            prefixes: vec![p("203.0.113.53/32", None)],
        }),
    ]);
    events
}

#[test]
#[ignore = "writes the checked-in fixture"]
fn write_the_v6_fixture() {
    let dir = fixture_v6_dir();
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut journal = Journal::open(&dir, &Options::default()).unwrap();
        for (i, event) in events_v6().iter().enumerate() {
            journal
                .append(1_795_700_000_000 + i as i64, std::slice::from_ref(event))
                .unwrap();
        }
        journal.flush().unwrap();
    }
    std::fs::remove_file(dir.join(anycastd_journal::LOCK_FILE)).unwrap();
}

#[test]
fn the_checked_in_v6_journal_still_decodes_record_for_record() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&fixture_v6_dir(), work.path());
    let journal = Journal::open(work.path(), &Options::default()).unwrap();
    let decoded: Vec<(u8, u64, i64, Event)> = journal
        .entries_from(0)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => (r.version, r.seq, r.at_ms, r.event),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<(u8, u64, i64, Event)> = events_v6()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (e.format(), i as u64 + 1, 1_795_700_000_000 + i as i64, e))
        .collect();
    assert_eq!(decoded, expected);
    let versions: Vec<u8> = decoded.iter().map(|(v, ..)| *v).collect();
    assert_eq!(
        versions[versions.len() - 3..],
        [6, 6, 6],
        "the graded records are format 6"
    );
    assert!(
        versions[..versions.len() - 3].iter().all(|v| *v <= 3),
        "the others as before"
    );
}

/// Every record kind of format version 3: version 2's, then prefixes of a backend other
/// than FRR (which only version 3 can name).
fn events_v3() -> Vec<Event> {
    let mut events = events_v2();
    let bird = PrefixRef {
        backend: "bird".into(),
        instance: "/run/bird/bird.ctl".into(),
        vrf: Some("blue".into()),
        prefix: "192.0.2.0/24".into(),
    };
    events.extend([
        Event::Drift(Drift {
            service: "web".into(),
            prefix: bird.clone(),
            present: false,
            wanted: true,
        }),
        Event::Reconfigured(Box::new(Reconfigured {
            service: "web".into(),
            params: ServiceParams {
                name: "web".into(),
                rise: 2,
                fall: 3,
                checks: vec![
                    CheckParams {
                        kind: "http".into(),
                        identity: "GET http://127.0.0.1/health status 200-299".into(),
                        name: "health".into(),
                        interval_ms: 1000,
                        timeout_ms: 1000,
                        pending_timeout_ms: 10_000,
                        max_age_ms: None,
                        shadow: false,
                    },
                    CheckParams {
                        kind: "exec".into(),
                        identity: "/usr/local/bin/deep-check".into(),
                        name: "deep".into(),
                        interval_ms: 5000,
                        timeout_ms: 3000,
                        pending_timeout_ms: 15_000,
                        max_age_ms: None,
                        shadow: true,
                    },
                ],
                prefixes: vec![bird.clone()],
                require: 1,
            },
            damping: None,
        })),
        Event::DaemonStopped(DaemonStopped {
            reason: "SIGTERM".into(),
            outcome: StopOutcome::Left(vec![bird, p("203.0.113.53/32", None)]),
        }),
    ]);
    events
}

#[test]
#[ignore = "writes the checked-in fixture"]
fn write_the_v3_fixture() {
    let dir = fixture_v3_dir();
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut journal = Journal::open(&dir, &Options::default()).unwrap();
        for (i, event) in events_v3().iter().enumerate() {
            journal
                .append(1_795_700_000_000 + i as i64, std::slice::from_ref(event))
                .unwrap();
        }
        journal.flush().unwrap();
    }
    std::fs::remove_file(dir.join(anycastd_journal::LOCK_FILE)).unwrap();
}

#[test]
fn the_checked_in_v3_journal_still_decodes_record_for_record() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&fixture_v3_dir(), work.path());
    let journal = Journal::open(work.path(), &Options::default()).unwrap();
    let decoded: Vec<(u8, u64, i64, Event)> = journal
        .entries_from(0)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => (r.version, r.seq, r.at_ms, r.event),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<(u8, u64, i64, Event)> = events_v3()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (3, i as u64 + 1, 1_795_700_000_000 + i as i64, e))
        .collect();
    assert_eq!(decoded, expected);
}

/// Every record kind format version 2 adds, after all of version 1's.
fn events_v2() -> Vec<Event> {
    let mut events = events();
    events.extend([
        Event::Runs(Runs {
            service: "dns".into(),
            segments: vec![
                Segment {
                    check: "dns".into(),
                    first_ms: 1_795_500_001_000,
                    interval_ms: 1_000,
                    count: 3_600,
                },
                Segment {
                    check: "dns6".into(),
                    first_ms: 1_795_500_001_000,
                    interval_ms: 5_000,
                    count: 720,
                },
            ],
        }),
        Event::Reconfigured(Box::new(Reconfigured {
            service: "dns".into(),
            params: ServiceParams {
                require: 0,
                name: "dns".into(),
                rise: 2,
                fall: 3,
                checks: vec![],
                prefixes: vec![p("203.0.113.53/32", None)],
            },
            damping: Some(DampingParams {
                penalty: 1000,
                suppress: 2000,
                reuse: 750,
                half_life_ms: 300_000,
                max_suppress_ms: 1_200_000,
            }),
        })),
        Event::DampingRestored(DampingRestored {
            state: DampingRecord {
                service: "dns".into(),
                penalty_milli: 1_523_000,
                at_ms: 1_795_400_000_000,
                suppressed_since_ms: None,
                restored: true,
            },
            penalty_now_milli: 412_000,
        }),
        Event::ReloadRejected(ReloadRejected {
            uid: Some(0),
            errors: vec!["/etc/anycastd/config.toml:3: services.dns.rise: must be a number".into()],
        }),
        Event::ReloadRejected(ReloadRejected {
            uid: None,
            errors: vec!["[journal] changed; restart required".into()],
        }),
    ]);
    events
}

#[test]
#[ignore = "writes the checked-in fixture"]
fn write_the_v2_fixture() {
    let dir = fixture_v2_dir();
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut journal = Journal::open(&dir, &Options::default()).unwrap();
        for (i, event) in events_v2().iter().enumerate() {
            journal
                .append(1_795_600_000_000 + i as i64, std::slice::from_ref(event))
                .unwrap();
        }
        journal.flush().unwrap();
    }
    std::fs::remove_file(dir.join(anycastd_journal::LOCK_FILE)).unwrap();
}

#[test]
fn the_checked_in_v2_journal_still_decodes_record_for_record() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&fixture_v2_dir(), work.path());
    let journal = Journal::open(work.path(), &Options::default()).unwrap();
    let decoded: Vec<(u8, u64, i64, Event)> = journal
        .entries_from(0)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => (r.version, r.seq, r.at_ms, r.event),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<(u8, u64, i64, Event)> = events_v2()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (2, i as u64 + 1, 1_795_600_000_000 + i as i64, e))
        .collect();
    assert_eq!(decoded, expected);
}

fn p(prefix: &str, vrf: Option<&str>) -> PrefixRef {
    PrefixRef::frr("/usr/bin/vtysh", vrf.map(str::to_owned), prefix)
}

/// One record of every kind and variant that format version 1 has.
fn events() -> Vec<Event> {
    let dns = vec![
        p("203.0.113.53/32", None),
        p("2001:db8::b19:bad:53/128", None),
    ];
    vec![
        Event::DaemonStarted(DaemonStarted {
            version: "0.1.0".into(),
            pid: 4242,
            config_hash: "0123456789abcdef".into(),
            boot_id: "c0ffee00-0000-4000-8000-000000000001".into(),
            services: vec![ServiceParams {
                require: 0,
                name: "dns".into(),
                rise: 2,
                fall: 3,
                checks: vec![CheckParams {
                    shadow: false,
                    kind: "cabourotte".into(),
                    identity: "http://127.0.0.1:9013".into(),
                    name: "dns".into(),
                    interval_ms: 5000,
                    timeout_ms: 5000,
                    pending_timeout_ms: 15000,
                    max_age_ms: Some(60000),
                }],
                prefixes: dns.clone(),
            }],
        }),
        Event::Reconciled(Reconciled {
            rebooted: false,
            found: vec![p("203.0.113.53/32", None)],
            items: [
                ReconcileDecision::Kept,
                ReconcileDecision::Orphan,
                ReconcileDecision::Missing,
                ReconcileDecision::Withdrawn,
                ReconcileDecision::Adopted,
                ReconcileDecision::Reboot,
            ]
            .into_iter()
            .map(|decision| ReconcileItem {
                service: "dns".into(),
                prefix: p("203.0.113.53/32", None),
                decision,
            })
            .collect(),
            unreadable: vec![("/usr/local/bin/vtysh".into(), "exit 1".into())],
        }),
        Event::CheckEdge(CheckEdge {
            service: "dns".into(),
            check: "dns".into(),
            observation: Observation::Pass,
            polls_since_last_edge: 0,
        }),
        Event::CheckEdge(CheckEdge {
            service: "dns".into(),
            check: "dns".into(),
            observation: Observation::Fail("HTTP 500".into()),
            polls_since_last_edge: 17,
        }),
        Event::CheckEdge(CheckEdge {
            service: "dns".into(),
            check: "dns".into(),
            observation: Observation::Pending,
            polls_since_last_edge: 1,
        }),
        Event::Transition(Transition {
            service: "dns".into(),
            from: State::Starting,
            to: State::Healthy,
            cause: Cause::Verdict {
                healthy: true,
                checks: vec![CheckResult {
                    check: "dns".into(),
                    observation: Observation::Pass,
                }],
            },
            healthy_streak: 2,
            unhealthy_streak: 0,
            change: Change::Announce,
            prefixes: dns.clone(),
        }),
        Event::Transition(Transition {
            service: "dns".into(),
            from: State::Healthy,
            to: State::Draining(DrainCause::Operator {
                reason: "maintenance".into(),
                expires_at_ms: Some(1_800_000_000_000),
                uid: 1000,
            }),
            cause: Cause::Drain,
            healthy_streak: 5,
            unhealthy_streak: 0,
            change: Change::Withdraw,
            prefixes: dns.clone(),
        }),
        Event::Transition(Transition {
            service: "ntp".into(),
            from: State::Draining(DrainCause::Shutdown),
            to: State::Unhealthy,
            cause: Cause::Restart,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: Change::None,
            prefixes: vec![p("203.0.113.123/32", Some("123"))],
        }),
        Event::Transition(Transition {
            service: "ntp".into(),
            from: State::Draining(DrainCause::Removed),
            to: State::Healthy,
            cause: Cause::Restored,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: Change::Announce,
            prefixes: vec![],
        }),
        Event::Transition(Transition {
            service: "web".into(),
            from: State::Starting,
            to: State::Healthy,
            cause: Cause::Adopted,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: Change::Announce,
            prefixes: vec![],
        }),
        Event::Transition(Transition {
            service: "web".into(),
            from: State::Healthy,
            to: State::Healthy,
            cause: Cause::Undrain,
            healthy_streak: 1,
            unhealthy_streak: 0,
            change: Change::Announce,
            prefixes: vec![],
        }),
        Event::Transition(Transition {
            service: "web".into(),
            from: State::Healthy,
            to: State::Healthy,
            cause: Cause::DrainExpired,
            healthy_streak: 1,
            unhealthy_streak: 0,
            change: Change::Announce,
            prefixes: vec![],
        }),
        Event::Apply(Apply {
            service: "dns".into(),
            prefix: p("203.0.113.53/32", None),
            change: Change::Announce,
            outcome: Outcome::Applied,
            decision_seq: 6,
        }),
        Event::Apply(Apply {
            service: "dns".into(),
            prefix: p("203.0.113.53/32", None),
            change: Change::Withdraw,
            outcome: Outcome::Failed("vtysh: exit 1".into()),
            decision_seq: 7,
        }),
        Event::Apply(Apply {
            service: "dns".into(),
            prefix: p("203.0.113.53/32", None),
            change: Change::Withdraw,
            outcome: Outcome::Superseded,
            decision_seq: 7,
        }),
        Event::Apply(Apply {
            service: "dns".into(),
            prefix: p("203.0.113.53/32", None),
            change: Change::Withdraw,
            outcome: Outcome::AlreadySo,
            decision_seq: 7,
        }),
        Event::Drift(Drift {
            service: "dns".into(),
            prefix: p("203.0.113.53/32", None),
            present: false,
            wanted: true,
        }),
        Event::Operator(OperatorAction {
            kind: OperatorKind::Stop,
            uid: 0,
            pid: 77,
        }),
        Event::Operator(OperatorAction {
            kind: OperatorKind::Handover,
            uid: 0,
            pid: 78,
        }),
        Event::DaemonStopped(DaemonStopped {
            reason: "SIGTERM".into(),
            outcome: StopOutcome::WithdrawnAll,
        }),
        Event::DaemonStopped(DaemonStopped {
            reason: "SIGINT".into(),
            outcome: StopOutcome::Left(vec![p("203.0.113.53/32", None)]),
        }),
        Event::DaemonStopped(DaemonStopped {
            reason: "stop --keep-announced".into(),
            outcome: StopOutcome::HandedOver,
        }),
    ]
}

#[test]
#[ignore = "writes the checked-in fixture"]
fn write_the_v1_fixture() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut journal = Journal::open(&dir, &Options::default()).unwrap();
        for (i, event) in events().iter().enumerate() {
            journal
                .append(1_795_500_000_000 + i as i64, std::slice::from_ref(event))
                .unwrap();
        }
        journal.flush().unwrap();
    }
    std::fs::remove_file(dir.join(anycastd_journal::LOCK_FILE)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_checked_in_v1_journal_still_decodes_record_for_record() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), work.path());
    let journal = Journal::open(work.path(), &Options::default()).unwrap();
    let decoded: Vec<(u64, i64, Event)> = journal
        .entries_from(0)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => {
                assert_eq!(r.version, 1, "written in format version 1");
                (r.seq, r.at_ms, r.event)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<(u64, i64, Event)> = events()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, 1_795_500_000_000 + i as i64, e))
        .collect();
    assert_eq!(decoded, expected);
    let last = journal.last_states().unwrap();
    assert_eq!(
        last.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["dns", "ntp", "web"]
    );
    assert_eq!(journal.last_start().unwrap().unwrap().1.pid, 4242);
}
