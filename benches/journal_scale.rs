//! Journal at scale: 1,000,000 records over 100 services. Prints, for this machine:
//! the bytes on disk per million records, the time to open the journal and read what a start
//! needs (last states, previous start), and the time of `history` for one service.
//! `cargo bench --bench journal_scale` (set JOURNAL_SCALE_RECORDS to change the size).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd::audit::history::{select, Query};
use anycastd_journal::wire::*;
use anycastd_journal::{Journal, Options};
use std::time::Instant;

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// This process's resident memory (MiB): the journal's memory as it grows (sled keeps some
/// per-page state beyond its page cache).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let total: u64 = std::env::var("JOURNAL_SCALE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let services = 100;
    let dir = tempfile::tempdir().unwrap();
    // JOURNAL_SCALE_KEEP=1: leave the journal behind (its path is printed) to measure a fresh
    // process opening it.
    if std::env::var_os("JOURNAL_SCALE_KEEP").is_some() {
        println!("journal: {}", dir.path().display());
    }
    let started = Instant::now();
    {
        let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
        journal
            .append(
                0,
                &[Event::DaemonStarted(DaemonStarted {
                    version: "bench".into(),
                    pid: 1,
                    config_hash: "0".into(),
                    boot_id: "b".into(),
                    services: vec![],
                })],
            )
            .unwrap();
        let mut batch = Vec::with_capacity(1000);
        for i in 0..total {
            let service = format!("svc{:03}", i % services);
            let event = if (i / services) % 10 == 0 {
                Event::Transition(Transition {
                    service,
                    from: State::Healthy,
                    to: State::Unhealthy,
                    cause: Cause::Verdict {
                        healthy: false,
                        checks: vec![CheckResult {
                            check: "c".into(),
                            observation: Observation::Fail("HTTP 500".into()),
                        }],
                    },
                    healthy_streak: 0,
                    unhealthy_streak: 1,
                    change: Change::Withdraw,
                    prefixes: vec![PrefixRef::frr("/usr/bin/vtysh", None, "203.0.113.53/32")],
                })
            } else {
                Event::CheckEdge(CheckEdge {
                    service,
                    check: "c".into(),
                    observation: if i % 2 == 0 {
                        Observation::Pass
                    } else {
                        Observation::Fail("HTTP 500".into())
                    },
                    polls_since_last_edge: i % 7,
                })
            };
            batch.push(event);
            if batch.len() == 1000 {
                journal.append(i as i64, &batch).unwrap();
                batch.clear();
            }
            if (i + 1) % (total / 4).max(1) == 0 {
                journal.flush().unwrap();
                println!("RSS after {:>8} records: {:.1} MiB", i + 1, rss_mib());
            }
        }
        journal.append(total as i64, &batch).unwrap();
        journal.flush().unwrap();
    }
    let written = started.elapsed();
    let bytes = dir_size(dir.path());
    println!("records written: {total} in {:.1} s", written.as_secs_f64());
    println!(
        "bytes on disk: {bytes} ({:.0} bytes per record, {:.0} MiB per million records)",
        bytes as f64 / total as f64,
        bytes as f64 / total as f64 * 1e6 / 1048576.0
    );

    let t = Instant::now();
    let journal = Journal::open(dir.path(), &Options::default()).unwrap();
    let states = journal.last_states().unwrap();
    let last_start = journal.last_start().unwrap();
    let opened = t.elapsed();
    assert_eq!(states.len(), services as usize);
    assert!(last_start.is_some());
    println!("RSS after reopening: {:.1} MiB", rss_mib());
    if std::env::var_os("JOURNAL_SCALE_KEEP").is_some() {
        drop(journal);
        let _ = dir.keep();
        return;
    }
    println!(
        "open + last states + previous start: {:.1} ms",
        opened.as_secs_f64() * 1e3
    );

    for round in 0..3 {
        let t = Instant::now();
        let selection = select(
            &journal,
            &Query {
                service: Some("svc042".into()),
                ..Query::default()
            },
        )
        .unwrap();
        let took = t.elapsed();
        println!(
            "history of one service ({} records) among {services}, run {}: {:.1} ms",
            selection.records.len(),
            round + 1,
            took.as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    let selection = select(
        &journal,
        &Query {
            since_ms: Some(total as i64 - 1000),
            ..Query::default()
        },
    )
    .unwrap();
    println!("history --since (last ~1,000 records of all services, binary search): {} records in {:.1} ms", selection.records.len(), t.elapsed().as_secs_f64() * 1e3);
    drop(journal);

    let records = replay_records();
    for (label, what_if) in [
        ("replay", anycastd::audit::replay::WhatIf::default()),
        (
            "replay + what-if --fall 3",
            anycastd::audit::replay::WhatIf {
                with_shadow: Vec::new(),
                rise: None,
                fall: Some(3),
                damping: None,
                ..anycastd::audit::replay::WhatIf::default()
            },
        ),
    ] {
        let t = Instant::now();
        let report = anycastd::audit::replay::replay("dns", &records, None, None, None, &what_if);
        let took = t.elapsed();
        assert!(report.divergences.is_empty());
        println!(
            "{label} of {} observations ({} records, {} transitions verified): {:.0} ms",
            report.observations,
            records.len(),
            report.verified,
            took.as_secs_f64() * 1e3
        );
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let mut journal = Journal::open(dir.path(), &Options::default()).unwrap();
        for chunk in records.chunks(1000) {
            let events: Vec<Event> = chunk.iter().map(|r| r.event.clone()).collect();
            journal.append(chunk[0].at_ms, &events).unwrap();
        }
        journal.flush().unwrap();
    }
    let journal = Journal::open(dir.path(), &Options::default()).unwrap();
    let t = Instant::now();
    let report = anycastd::audit::replay::replay_from(
        &journal,
        "dns",
        None,
        None,
        None,
        &anycastd::audit::replay::WhatIf::default(),
    )
    .unwrap();
    println!(
        "replay from the journal (read + re-run) of {} observations: {:.0} ms",
        report.observations,
        t.elapsed().as_secs_f64() * 1e3
    );
}

/// Replay of 1,000,000 observations of one service: 100,000 observation records, each after
/// a run of 9 unchanged results (one runs record), alternating pass and fail (a flap every
/// record).
fn replay_records() -> Vec<anycastd_journal::Record> {
    use anycastd_journal::Record;
    let mut records = vec![Record {
        version: anycastd_journal::FORMAT_VERSION,
        seq: 1,
        at_ms: 0,
        event: Event::DaemonStarted(DaemonStarted {
            version: "bench".into(),
            pid: 1,
            config_hash: "0".into(),
            boot_id: "b".into(),
            services: vec![ServiceParams {
                require: 0,
                name: "dns".into(),
                rise: 1,
                fall: 1,
                checks: vec![CheckParams {
                    shadow: false,
                    kind: "cabourotte".into(),
                    identity: "http://127.0.0.1:9013".into(),
                    name: "c".into(),
                    interval_ms: 1000,
                    timeout_ms: 1000,
                    pending_timeout_ms: 10_000,
                    max_age_ms: None,
                }],
                prefixes: vec![],
            }],
        }),
    }];
    let mut state = State::Starting;
    for i in 0..100_000u64 {
        let pass = i % 2 == 0;
        let at = (i as i64 + 1) * 10_000;
        if i > 0 {
            records.push(Record {
                version: anycastd_journal::FORMAT_VERSION,
                seq: records.len() as u64 + 1,
                at_ms: at,
                event: Event::Runs(anycastd_journal::wire::Runs {
                    service: "dns".into(),
                    segments: vec![anycastd_journal::wire::Segment {
                        check: "c".into(),
                        first_ms: at - 9_000,
                        interval_ms: 1_000,
                        count: 9,
                    }],
                }),
            });
        }
        records.push(Record {
            version: anycastd_journal::FORMAT_VERSION,
            seq: records.len() as u64 + 1,
            at_ms: at,
            event: Event::CheckEdge(CheckEdge {
                service: "dns".into(),
                check: "c".into(),
                observation: if pass {
                    Observation::Pass
                } else {
                    Observation::Fail("x".into())
                },
                polls_since_last_edge: 0,
            }),
        });
        let to = if pass {
            State::Healthy
        } else {
            State::Unhealthy
        };
        records.push(Record {
            version: anycastd_journal::FORMAT_VERSION,
            seq: records.len() as u64 + 1,
            at_ms: at,
            event: Event::Transition(Transition {
                service: "dns".into(),
                from: state.clone(),
                to: to.clone(),
                cause: Cause::Verdict {
                    healthy: pass,
                    checks: vec![CheckResult {
                        check: "c".into(),
                        observation: if pass {
                            Observation::Pass
                        } else {
                            Observation::Fail("x".into())
                        },
                    }],
                },
                healthy_streak: u32::from(pass),
                unhealthy_streak: u32::from(!pass),
                change: if pass {
                    Change::Announce
                } else {
                    Change::Withdraw
                },
                prefixes: vec![],
            }),
        });
        state = to;
    }
    records
}
