//! The journal round-trips records in order, indexes them per service, keeps the last state,
//! refuses a second holder and skips records of unknown format versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd_journal::wire::*;
use anycastd_journal::*;
use std::sync::mpsc;

fn prefix(p: &str) -> PrefixRef {
    PrefixRef::frr("/usr/bin/vtysh", None, p)
}

fn transition(service: &str, to: State) -> Event {
    Event::Transition(Transition {
        service: service.into(),
        from: State::Starting,
        to,
        cause: Cause::Verdict {
            healthy: true,
            checks: vec![CheckResult {
                check: "dns".into(),
                observation: Observation::Pass,
            }],
        },
        healthy_streak: 1,
        unhealthy_streak: 0,
        change: Change::Announce,
        prefixes: vec![prefix("203.0.113.53/32")],
    })
}

fn edge(service: &str) -> Event {
    Event::CheckEdge(CheckEdge {
        service: service.into(),
        check: "c".into(),
        observation: Observation::Fail("HTTP 500".into()),
        polls_since_last_edge: 3,
    })
}

fn records(journal: &Journal) -> Vec<Record> {
    journal
        .entries_from(0)
        .map(|e| match e {
            Ok(Entry::Record(r)) => r,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn appended_records_read_back_in_order_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(
            journal
                .append(10, &[transition("dns", State::Healthy), edge("ntp")])
                .unwrap(),
            2
        );
        assert_eq!(journal.append(20, &[edge("dns")]).unwrap(), 3);
        journal.flush().unwrap();
    }
    let journal = Journal::open(dir.path(), &Options::default()).unwrap();
    let all = records(&journal);
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[0].event, transition("dns", State::Healthy));
    assert_eq!(all[2].at_ms, 20);
    assert_eq!(journal.next_seq(), 4);
}

#[test]
fn one_service_records_come_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
    journal
        .append(
            1,
            &[
                edge("dns"),
                edge("ntp"),
                edge("dns.v6"),
                transition("dns", State::Healthy),
            ],
        )
        .unwrap();
    let seqs: Vec<u64> = journal
        .service_entries("dns")
        .map(|e| match e.unwrap() {
            Entry::Record(r) => r.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, vec![1, 4], "dns.v6 and ntp are other services");
}

#[test]
fn the_last_state_of_each_service_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
    journal
        .append(
            1,
            &[
                transition("dns", State::Healthy),
                transition("dns", State::Unhealthy),
            ],
        )
        .unwrap();
    let states = journal.last_states().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].0, "dns");
    assert_eq!(states[0].1.state, State::Unhealthy);
    assert_eq!(states[0].1.seq, 2);
}

#[test]
fn a_second_holder_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Journal::open(dir.path(), &Options::default()).unwrap();
    match Journal::open(dir.path(), &Options::default()) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn records_of_an_unknown_format_version_are_reported_not_fatal() {
    assert_eq!(
        codec::decode(7, &[9, 1, 2, 3]).unwrap(),
        Entry::UnknownVersion { seq: 7, version: 9 }
    );
    assert!(matches!(
        codec::decode(7, &[1, 0xff]),
        Err(Error::Corrupt { seq: 7, .. })
    ));
    assert!(matches!(codec::decode(7, &[]), Err(Error::Corrupt { .. })));
}

#[test]
fn the_encoding_of_a_record_is_frozen() {
    // Format versions 2 and 3 keep version 1's varint bincode body: changing it is changing
    // the on-disk format.
    let bytes = codec::encode(1_700_000_000_000, &edge("dns")).unwrap();
    assert_eq!(bytes[0], 3);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "03fd00d0ca9f170300000303646e7301630108485454502035303003"
    );
    // A record without a prefix reads the same under every version.
    for version in [1, 2] {
        let mut old = bytes.clone();
        old[0] = version;
        match codec::decode(3, &old).unwrap() {
            Entry::Record(r) => {
                assert_eq!((r.version, r.event), (version, edge("dns")));
            }
            other => panic!("{other:?}"),
        }
    }
    let runs = Event::Runs(Runs {
        service: "dns".into(),
        segments: vec![Segment {
            check: "dns".into(),
            first_ms: 1_700_000_000_000,
            interval_ms: 1000,
            count: 3600,
        }],
    });
    let hex: String = codec::encode(1_700_000_000_000, &runs)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // version 3, at, variant 15 (Runs), "dns", one segment: "dns", first, 1000, 3600.
    assert_eq!(
        hex,
        "03fd00d0ca9f170300000f03646e730103646e73fd00d0ca9f17030000fbe803fb100e"
    );
}

#[test]
fn a_prefix_names_its_backend_in_format_3_and_a_vtysh_binary_before() {
    let drift = |prefix: PrefixRef| {
        Event::Drift(anycastd_journal::wire::Drift {
            service: "dns".into(),
            prefix,
            present: false,
            wanted: true,
        })
    };
    let v3 = codec::encode(5, &drift(prefix("203.0.113.53/32"))).unwrap();
    // Version 3, at 5 (zigzag varint 10), variant 7 (Drift), "dns", the prefix ("frr",
    // "/usr/bin/vtysh", no VRF, "203.0.113.53/32"), present false, wanted true.
    let expected_v3 = [
        &[3u8, 10, 7, 3][..],
        b"dns",
        &[3],
        b"frr",
        &[14],
        b"/usr/bin/vtysh",
        &[0, 15],
        b"203.0.113.53/32",
        &[0, 1],
    ]
    .concat();
    assert_eq!(v3, expected_v3);
    // The same record as format 2 wrote it: the vtysh binary only.
    let v2 = [
        &[2u8, 10, 7, 3][..],
        b"dns",
        &[14],
        b"/usr/bin/vtysh",
        &[0, 15],
        b"203.0.113.53/32",
        &[0, 1],
    ]
    .concat();
    match codec::decode(1, &v2).unwrap() {
        Entry::Record(r) => assert_eq!(r.event, drift(prefix("203.0.113.53/32"))),
        other => panic!("{other:?}"),
    }
    // Another backend's reference, and its JSON (both layouts are read from JSON).
    let bird = PrefixRef {
        backend: "bird".into(),
        instance: "/run/bird/bird.ctl".into(),
        vrf: Some("blue".into()),
        prefix: "192.0.2.0/24".into(),
    };
    match codec::decode(2, &codec::encode(6, &drift(bird.clone())).unwrap()).unwrap() {
        Entry::Record(r) => assert_eq!(r.event, drift(bird.clone())),
        other => panic!("{other:?}"),
    }
    let json = serde_json::to_string(&bird).unwrap();
    assert_eq!(
        json,
        r#"{"backend":"bird","instance":"/run/bird/bird.ctl","vrf":"blue","prefix":"192.0.2.0/24"}"#
    );
    assert_eq!(serde_json::from_str::<PrefixRef>(&json).unwrap(), bird);
    assert_eq!(
        serde_json::from_str::<PrefixRef>(
            r#"{"vtysh":"/usr/bin/vtysh","vrf":null,"prefix":"203.0.113.53/32"}"#
        )
        .unwrap(),
        prefix("203.0.113.53/32")
    );
}

#[test]
fn service_and_check_parameters_gain_require_and_shadow_in_format_3() {
    use anycastd_journal::wire::{CheckParams, Reconfigured, ServiceParams};
    let record = |require: u32, shadow: bool| {
        Event::Reconfigured(Box::new(Reconfigured {
            service: "ntp".into(),
            params: ServiceParams {
                name: "ntp".into(),
                rise: 2,
                fall: 3,
                checks: vec![CheckParams {
                    kind: "exec".into(),
                    identity: "/bin/true".into(),
                    name: "t".into(),
                    interval_ms: 200,
                    timeout_ms: 100,
                    pending_timeout_ms: 250,
                    max_age_ms: None,
                    shadow,
                }],
                prefixes: vec![],
                require,
            },
            damping: None,
        }))
    };
    // Version 3, at 5, variant 16 (Reconfigured), "ntp", the parameters: "ntp", rise 2,
    // fall 3, one check ("exec", "/bin/true", "t", 200, 100, 250, no max age, shadow), no
    // prefixes, require 1; no damping.
    let expected_v3 = [
        &[3u8, 10, 16, 3][..],
        b"ntp",
        &[3],
        b"ntp",
        &[2, 3, 1, 4],
        b"exec",
        &[9],
        b"/bin/true",
        &[1],
        b"t",
        &[200, 100, 250, 0, 1, 0, 1, 0],
    ]
    .concat();
    assert_eq!(codec::encode(5, &record(1, true)).unwrap(), expected_v3);
    // Format 2 wrote neither: its records read as every check required, none a shadow.
    let v2 = [
        &[2u8, 10, 16, 3][..],
        b"ntp",
        &[3],
        b"ntp",
        &[2, 3, 1, 4],
        b"exec",
        &[9],
        b"/bin/true",
        &[1],
        b"t",
        &[200, 100, 250, 0, 0, 0],
    ]
    .concat();
    match codec::decode(1, &v2).unwrap() {
        Entry::Record(r) => assert_eq!(r.event, record(0, false)),
        other => panic!("{other:?}"),
    }
    // JSON from before format 3 (`url`, no `shadow`, no `require`) still reads.
    let json = r#"{"name":"ntp","rise":2,"fall":3,"checks":[{"kind":"exec","url":"/bin/true","name":"t","interval_ms":200,"timeout_ms":100,"pending_timeout_ms":250,"max_age_ms":null}],"prefixes":[]}"#;
    let Event::Reconfigured(r) = record(0, false) else {
        unreachable!()
    };
    assert_eq!(
        serde_json::from_str::<ServiceParams>(json).unwrap(),
        r.params
    );
}

#[test]
fn a_format_2_record_kind_under_version_1_is_corrupt() {
    let runs = Event::Runs(Runs {
        service: "dns".into(),
        segments: vec![],
    });
    let mut bytes = codec::encode(5, &runs).unwrap();
    bytes[0] = 1;
    assert!(matches!(
        codec::decode(9, &bytes),
        Err(Error::Corrupt { seq: 9, .. })
    ));
}

#[test]
fn the_committer_answers_durable_appends_after_flushing_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), &Options::default()).unwrap();
    let committer = Committer::start(journal);
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        committer.submit(
            i,
            vec![edge("dns")],
            i % 2 == 0,
            Some(Box::new(move |r| tx.send(r).unwrap())),
        );
    }
    let mut seqs: Vec<u64> = (0..50).map(|_| rx.recv().unwrap().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let journal = committer.close().unwrap();
    assert_eq!(records(&journal).len(), 50);
}

#[test]
fn a_burst_of_durable_appends_with_short_lulls_costs_a_few_flushes_not_one_each() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), &Options::default()).unwrap();
    let committer = Committer::start(journal);
    let (tx, rx) = mpsc::channel();
    // 400 services fail together: their transitions arrive in runs of 40, each run 3 ms
    // after the last (connections to a dead server failing one after another). Without
    // gathering, each run would be a flush of its own.
    for i in 0..400 {
        let tx = tx.clone();
        committer.submit(
            i,
            vec![transition(&format!("s{i}"), State::Unhealthy)],
            true,
            Some(Box::new(move |r| tx.send(r).unwrap())),
        );
        if i % 40 == 39 {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
    }
    for _ in 0..400 {
        rx.recv().unwrap().unwrap();
    }
    let flushes = committer.flushes();
    assert!(
        (1..=4).contains(&flushes),
        "{flushes} flushes for a burst of 400 durable appends"
    );
    let journal = committer.close().unwrap();
    assert_eq!(records(&journal).len(), 400);
}

fn seqs_of(journal: &Journal, service: &str) -> Vec<u64> {
    journal
        .service_entries(service)
        .map(|e| match e.unwrap() {
            Entry::Record(r) => r.seq,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn retention_keeps_at_most_n_records_per_service_and_never_the_last_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
    journal
        .append(1, &[transition("dns", State::Healthy)])
        .unwrap();
    for _ in 0..5 {
        journal.append(2, &[edge("dns"), edge("ntp")]).unwrap();
    }
    let policy = Retention {
        max_age_ms: None,
        max_per_service: 3,
        max_records: 1000,
    };
    assert_eq!(journal.enforce(&policy, 10).unwrap(), 5);
    assert_eq!(seqs_of(&journal, "dns"), [6, 8, 10]);
    assert_eq!(seqs_of(&journal, "ntp"), [7, 9, 11]);
    assert_eq!(
        journal.last_states().unwrap()[0].1.state,
        State::Healthy,
        "the last state is kept"
    );
    // Counting continues with new appends.
    journal.append(3, &[edge("dns")]).unwrap();
    assert_eq!(journal.enforce(&policy, 10).unwrap(), 1);
    assert_eq!(seqs_of(&journal, "dns"), [8, 10, 12]);
}

#[test]
fn retention_applies_a_global_cap_and_an_age_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
    for at in 0..10 {
        journal
            .append(at * 1000, &[edge(if at % 2 == 0 { "dns" } else { "ntp" })])
            .unwrap();
    }
    let cap = Retention {
        max_age_ms: None,
        max_per_service: 1000,
        max_records: 6,
    };
    assert_eq!(journal.enforce(&cap, 10_000).unwrap(), 4);
    assert_eq!(records(&journal).first().unwrap().seq, 5);
    let age = Retention {
        max_age_ms: Some(3_000),
        max_per_service: 1000,
        max_records: 1000,
    };
    journal.enforce(&age, 10_000).unwrap();
    let left: Vec<i64> = records(&journal).iter().map(|r| r.at_ms).collect();
    assert_eq!(left, [7000, 8000, 9000]);
    assert_eq!(seqs_of(&journal, "dns"), [9], "the index follows the log");
}

#[test]
fn a_time_maps_to_the_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
    for at in [100, 200, 200, 300] {
        journal.append(at, &[edge("dns")]).unwrap();
    }
    assert_eq!(journal.seq_at_or_after(0).unwrap(), 1);
    assert_eq!(journal.seq_at_or_after(200).unwrap(), 2);
    assert_eq!(journal.seq_at_or_after(201).unwrap(), 4);
    assert_eq!(journal.seq_at_or_after(301).unwrap(), 5);
}

/// Format 4 appends one record kind; its records carry version 4, every other record still 3,
/// so that a build knowing format 3 skips only them. Bytes written by hand from bincode's
/// varint rules.
#[test]
fn a_routing_restart_is_a_format_4_record_and_the_rest_stay_format_3() {
    let restart = Event::RoutingRestarted(RoutingRestarted {
        service: "dns".into(),
        daemon: "bgpd".into(),
        prefixes: Vec::new(),
        total: 2,
    });
    let bytes = codec::encode(1, &restart).unwrap();
    // version 4; at_ms 1 (zigzag 2); variant 19; "dns"; "bgpd"; no prefixes; total 2.
    let expected: Vec<u8> = [&[4u8, 2, 19, 3][..], b"dns", &[4], b"bgpd", &[0, 2]].concat();
    assert_eq!(bytes, expected);
    match codec::decode(7, &bytes).unwrap() {
        Entry::Record(r) => assert_eq!((r.version, r.event), (4, restart.clone())),
        other => panic!("{other:?}"),
    }
    // Other kinds are still written as format 3.
    assert_eq!(codec::encode(1, &edge("dns")).unwrap()[0], 3);
    // The new kind marked as an older version is corrupt, not misread.
    let mut marked_3 = bytes.clone();
    marked_3[0] = 3;
    assert!(matches!(
        codec::decode(8, &marked_3),
        Err(Error::Corrupt { .. })
    ));
    // A build of a later format skips it as unknown.
    let mut marked_8 = bytes;
    marked_8[0] = 8;
    assert!(matches!(
        codec::decode(9, &marked_8),
        Ok(Entry::UnknownVersion { version: 8, .. })
    ));
}

#[test]
fn a_level_and_a_grace_end_are_format_6_records_and_other_transitions_stay_format_3() {
    let level = Event::Level(LevelRecord {
        service: "dns".into(),
        level: Some(Level::GracefulShutdown),
        attributes: Attributes::default(),
        grace_until_ms: Some(30_000),
    });
    let bytes = codec::encode(1, &level).unwrap();
    assert_eq!(bytes[0], 6);
    match codec::decode(7, &bytes).unwrap() {
        Entry::Record(r) => assert_eq!((r.version, r.event), (6, level)),
        other => panic!("{other:?}"),
    }
    let transition = |cause| {
        Event::Transition(Transition {
            service: "dns".into(),
            from: State::Draining(DrainCause::Shutdown),
            to: State::Draining(DrainCause::Shutdown),
            cause,
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: Change::Withdraw,
            prefixes: vec![],
        })
    };
    assert_eq!(
        codec::encode(1, &transition(Cause::GraceEnded)).unwrap()[0],
        6
    );
    assert_eq!(codec::encode(1, &transition(Cause::Drain)).unwrap()[0], 3);
    // Marked as format 5 it is corrupt, not misread.
    let mut marked_5 = bytes;
    marked_5[0] = 5;
    assert!(matches!(
        codec::decode(8, &marked_5),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn the_verdict_rule_is_a_format_5_record() {
    let rule = Event::VerdictRule(VerdictRule { fail_early: true });
    let bytes = codec::encode(1, &rule).unwrap();
    // version 5; at_ms 1 (zigzag 2); variant 21 (after RoutingRestarted 19, HookRan 20); true.
    assert_eq!(bytes, vec![5u8, 2, 21, 1]);
    match codec::decode(7, &bytes).unwrap() {
        Entry::Record(r) => assert_eq!((r.version, r.event), (5, rule)),
        other => panic!("{other:?}"),
    }
    // Marked as format 4 it is corrupt, not misread; a build that knows format 4 (which
    // stops at version 4) skips it as unknown, as this one skips version 8.
    let mut marked_4 = bytes.clone();
    marked_4[0] = 4;
    assert!(matches!(
        codec::decode(8, &marked_4),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(codec::encode(1, &edge("dns")).unwrap()[0], 3);
}

#[test]
fn the_fleet_guard_answer_is_a_format_6_record() {
    use anycastd_journal::wire::{FleetAnswer, FleetCount, FleetGuard};
    let answer = Event::FleetGuard(FleetGuard {
        service: "dns".into(),
        transition_seq: 7,
        answer: FleetAnswer::Held(FleetCount {
            announcing: 2,
            sites: 9,
            rule: "minimum 3".into(),
        }),
    });
    let bytes = codec::encode(1, &answer).unwrap();
    // version 6; at_ms 1 (zigzag 2); variant 23 (after VerdictRule 21 and Level 22).
    assert_eq!(&bytes[..3], &[6u8, 2, 23]);
    match codec::decode(7, &bytes).unwrap() {
        Entry::Record(r) => assert_eq!((r.version, r.event), (6, answer)),
        other => panic!("{other:?}"),
    }
    // Marked as format 5 it is corrupt, not misread: a build that knows format 5 (which
    // stops at version 5) skips it as unknown.
    let mut marked_5 = bytes.clone();
    marked_5[0] = 5;
    assert!(matches!(
        codec::decode(8, &marked_5),
        Err(Error::Corrupt { .. })
    ));
    // Other kinds are still written as format 3.
    assert_eq!(codec::encode(1, &edge("dns")).unwrap()[0], 3);
}

#[test]
fn a_drain_forced_past_the_fleet_guard_is_a_format_7_record() {
    use anycastd_journal::wire::{DrainForced, ForcedFleet};
    let forced = Event::DrainForced(DrainForced {
        service: "dns".into(),
        reason: "maintenance".into(),
        uid: 0,
        pid: 42,
        rule: "minimum 2".into(),
        fleet: ForcedFleet::Counted {
            left_announcing: 1,
            sites: 3,
        },
    });
    let bytes = codec::encode(1, &forced).unwrap();
    // version 7; at_ms 1 (zigzag 2); variant 24 (after Level 22 and FleetGuard 23).
    assert_eq!(&bytes[..3], &[7u8, 2, 24]);
    match codec::decode(7, &bytes).unwrap() {
        Entry::Record(r) => assert_eq!((r.version, r.event), (7, forced)),
        other => panic!("{other:?}"),
    }
    // Marked as format 6 it is corrupt, not misread: a build that knows format 6 (which
    // stops at version 6) skips it as unknown.
    let mut marked_6 = bytes.clone();
    marked_6[0] = 6;
    assert!(matches!(
        codec::decode(8, &marked_6),
        Err(Error::Corrupt { .. })
    ));
}
