//! Journal growth per check per day, with the daemon's own per-service core (what the driver
//! journals): a day of fake time, results of every check at its interval, written to a real
//! journal, then the store's size on disk.
//!
//!     cargo bench --bench journal_growth
//!
//! Scenarios: steady (every check passes all day), and a flapping one (a failure every 10
//! minutes, lasting 3 results) for comparison. Each uses 100 services of 2 checks at 1 s and
//! at 5 s (the default interval), so per-service records are shared by two checks as in a
//! real config. The size on disk is the store's minus that of an empty store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd::service::Core;
use anycastd_fsm::{Observation, State};
use anycastd_journal::wire;
use anycastd_journal::{Journal, Options};
use std::path::Path;

const DAY_MS: i64 = 86_400_000;
const SERVICES: usize = 100;
const CHECKS: usize = 2;

fn params(name: &str, interval_ms: u64) -> wire::ServiceParams {
    wire::ServiceParams {
        require: 0,
        name: name.into(),
        rise: 1,
        fall: 1,
        checks: (0..CHECKS)
            .map(|i| wire::CheckParams {
                shadow: false,
                kind: "cabourotte".into(),
                identity: "http://127.0.0.1:9013".into(),
                name: format!("{name}-check-{i}"),
                interval_ms,
                timeout_ms: interval_ms.min(5_000),
                pending_timeout_ms: (3 * interval_ms).max(10_000),
                max_age_ms: None,
            })
            .collect(),
        prefixes: vec![wire::PrefixRef::frr(
            "/usr/bin/vtysh",
            None,
            "203.0.113.53/32",
        )],
    }
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One day: returns (records, encoded bytes, bytes on disk).
fn day(interval_ms: u64, flapping: bool) -> (usize, usize, u64) {
    let start = 1_795_500_000_000;
    let mut cores: Vec<Core> = (0..SERVICES)
        .map(|i| {
            Core::new(
                params(&format!("svc{i}"), interval_ms),
                None,
                State::Starting,
                start,
            )
        })
        .collect();
    let mut records: Vec<(i64, wire::Event)> = Vec::new();
    let steps = DAY_MS / interval_ms as i64;
    for step in 0..steps {
        let at = start + step * interval_ms as i64;
        // A failure every 10 minutes, 3 results long.
        let failing = flapping && (at - start) % 600_000 < 3 * interval_ms as i64;
        for core in &mut cores {
            for check in 0..CHECKS {
                let observation = if failing && check == 0 {
                    Observation::Fail("timeout".into())
                } else {
                    Observation::Pass
                };
                let effects = core.observe(check, observation, at);
                records.extend(effects.records.into_iter().map(|r| (at, r)));
            }
        }
    }
    for core in &mut cores {
        records.extend(core.take_runs().map(|r| (start + DAY_MS, r)));
    }
    let encoded: usize = records
        .iter()
        .map(|(at, r)| {
            anycastd_journal::codec::encode(*at, r)
                .map(|b| b.len())
                .unwrap_or(0)
        })
        .sum();
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let mut journal = Journal::open(dir.path(), &Options::default()).expect("journal");
        for (at, record) in &records {
            journal
                .append(*at, std::slice::from_ref(record))
                .expect("append");
        }
        journal.flush().expect("flush");
    }
    (records.len(), encoded, dir_size(dir.path()))
}

fn main() {
    let empty = {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let mut journal = Journal::open(dir.path(), &Options::default()).expect("journal");
            journal.flush().expect("flush");
        }
        dir_size(dir.path())
    };
    println!(
        "journal growth per day, {SERVICES} services x {CHECKS} checks (per check: totals / {})",
        SERVICES * CHECKS
    );
    for (label, interval_ms, flapping) in [
        ("steady, checks every 1 s", 1_000, false),
        ("steady, checks every 5 s", 5_000, false),
        (
            "a 3-result failure every 10 min, checks every 1 s",
            1_000,
            true,
        ),
    ] {
        let (records, encoded, disk) = day(interval_ms, flapping);
        let disk = disk.saturating_sub(empty);
        let checks = (SERVICES * CHECKS) as f64;
        println!(
            "{label}: {records} records ({:.1} per check), {encoded} bytes encoded ({:.0} per check), {:.1} KiB more on disk than an empty store ({:.0} bytes per check)",
            records as f64 / checks,
            encoded as f64 / checks,
            disk as f64 / 1024.0,
            disk as f64 / checks
        );
    }
}
