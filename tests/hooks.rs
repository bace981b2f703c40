//! `[hooks] on_transition` against the real daemon: a slow hook runs once per transition, in
//! journal order, never two at once, without holding back the decisions; a failing hook and
//! one past its timeout are journaled with why (and the latter's process group is gone).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

fn history(config: &std::path::Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "dns", "--json", "-c"])
        .arg(config)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_in_order_one_at_a_time_without_delaying_decisions() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let slow = format!(
        "echo \"start $ANYCASTD_SEQ $ANYCASTD_FROM $ANYCASTD_TO $(date +%s%N) [$ANYCASTD_ANNOUNCE] [$ANYCASTD_PREFIXES] [$ANYCASTD_CAUSE]\" >> {log}; sleep 0.5; echo \"end $ANYCASTD_SEQ $(date +%s%N)\" >> {log}",
        log = log.display()
    );
    let sections = format!(
        "[hooks]\non_transition = [\n  {{ command = \"/bin/sh\", args = [\"-c\", {slow:?}], timeout = \"5s\" }},\n  {{ command = \"/bin/sh\", args = [\"-c\", \"echo broken >&2; exit 3\"] }},\n  {{ command = \"/bin/sleep\", args = [\"30.123\"], timeout = \"300ms\" }},\n]\n"
    );
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService {
            sections: &sections,
            ..OneService::default()
        },
    );
    let _daemon = Daemon::start(&config, &dir.path().join("log"));
    // Healthy, then four quick flips (each shorter than one run of the slow hook).
    tokio::time::sleep(Duration::from_millis(600)).await;
    for behaviour in [
        Behaviour::Fail("down".into()),
        Behaviour::Pass,
        Behaviour::Fail("down".into()),
        Behaviour::Pass,
    ] {
        emulator.set("dns", behaviour);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every transition (from != to) of dns, in journal order: (seq, at_ms).
    let transitions = |records: &[serde_json::Value]| -> Vec<(u64, i64)> {
        records
            .iter()
            .filter(|r| r["kind"] == "transition")
            .filter(|r| r["record"]["Transition"]["from"] != r["record"]["Transition"]["to"])
            .map(|r| (r["seq"].as_u64().unwrap(), r["at_ms"].as_i64().unwrap()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (records, runs) = loop {
        let records = history(&config);
        let wanted = transitions(&records).len();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let ends = text.lines().filter(|l| l.starts_with("end ")).count();
        let hook_records = records.iter().filter(|r| r["kind"] == "hook").count();
        if wanted >= 5 && ends == wanted && hook_records == 3 * wanted {
            break (records, text);
        }
        assert!(
            Instant::now() < deadline,
            "{wanted} transitions, {ends} runs:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let transitions = transitions(&records);

    // The slow hook: once per transition, in journal order, never overlapping.
    let starts: Vec<(u64, i64)> = runs
        .lines()
        .filter_map(|l| l.strip_prefix("start "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                w[3].parse::<i64>().unwrap() / 1_000_000,
            )
        })
        .collect();
    let ends: Vec<(u64, i64)> = runs
        .lines()
        .filter_map(|l| l.strip_prefix("end "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                w[1].parse::<i64>().unwrap() / 1_000_000,
            )
        })
        .collect();
    let seqs: Vec<u64> = transitions.iter().map(|(s, _)| *s).collect();
    assert_eq!(starts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs);
    assert_eq!(ends.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs);
    for i in 1..starts.len() {
        assert!(
            starts[i].1 >= ends[i - 1].1,
            "run {i} began before run {} ended",
            i - 1
        );
    }
    // The decisions did not wait for it: a transition was journaled while the hook was still
    // running for an earlier one.
    assert!(
        (1..transitions.len()).any(|i| transitions[i].1 < ends[i - 1].1),
        "transitions {transitions:?}, hook runs ended {ends:?}"
    );
    // The first transition's environment.
    let first = runs.lines().next().unwrap();
    assert!(
        first.contains(" starting healthy ")
            && first.contains("[1] [203.0.113.53/32] [all checks pass]"),
        "{first}"
    );

    // The failing hook and the one past its timeout, journaled with why.
    let failures: Vec<(String, Option<String>)> = records
        .iter()
        .filter(|r| r["kind"] == "hook")
        .map(|r| {
            let h = &r["record"]["HookRan"];
            (
                h["hook"].as_str().unwrap().to_owned(),
                h["failure"].as_str().map(str::to_owned),
            )
        })
        .collect();
    for (hook, failure) in &failures {
        match hook.as_str() {
            "/bin/sh" => assert!(
                failure.is_none() || failure.as_deref() == Some("exit 3: broken"),
                "{failure:?}"
            ),
            "/bin/sleep" => assert_eq!(
                failure.as_deref(),
                Some("timed out after 300 ms (process group killed)")
            ),
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        failures
            .iter()
            .filter(|(_, f)| f.as_deref() == Some("exit 3: broken"))
            .count(),
        transitions.len()
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 30.123"])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "a timed-out hook is still running");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_sees_the_level_its_transition_left_the_prefixes_at() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let hook = format!(
        "echo \"$ANYCASTD_TO|$ANYCASTD_LEVEL|$ANYCASTD_AS_PATH_PREPEND|$ANYCASTD_MED|$ANYCASTD_COMMUNITIES|$ANYCASTD_LARGE_COMMUNITIES|$ANYCASTD_GRACE_END\" >> {}",
        log.display()
    );
    let sections = format!(
        "[hooks]\non_transition = [{{ command = \"/bin/sh\", args = [\"-c\", {hook:?}] }}]\n"
    );
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService {
            sections: &sections,
            service: "on_unhealthy = \"deprefer\"\n\
                      deprefer = { as_path_prepend = 3, med = 1000, communities = [\"65000:666\"], large_communities = [\"65000:1:666\"] }\n\
                      drain_grace = \"1h\"\n",
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    let lines = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "{text}\n{}", daemon.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    lines(1);
    emulator.set("dns", Behaviour::Fail("down".into()));
    lines(2);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["drain", "dns", "--reason", "maintenance", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    // Drained (the FRR of these tests has no BGP instance, so the drain answers 70: not
    // confirmed).
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("dns: drained; announced with GRACEFUL_SHUTDOWN"),
        "{out:?}"
    );
    let lines = lines(3);
    assert_eq!(lines[0], "healthy|normal|0||||", "{lines:?}");
    assert_eq!(
        lines[1], "unhealthy|de-preferred|3|1000|65000:666|65000:1:666|",
        "{lines:?}"
    );
    let (head, grace_end) = lines[2].rsplit_once('|').unwrap();
    assert_eq!(
        head, "draining|graceful-shutdown|3|1000|65000:666 65535:0|65000:1:666",
        "{lines:?}"
    );
    assert!(
        grace_end.starts_with("20") && grace_end.ends_with('Z'),
        "{lines:?}"
    );
    // In a grace of an hour: ended without one.
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drains_grace_ending_by_itself_runs_the_hooks_with_its_withdrawal() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hook.log");
    let hook = format!(
        "echo \"$ANYCASTD_FROM|$ANYCASTD_TO|$ANYCASTD_CAUSE|$ANYCASTD_ANNOUNCE|$ANYCASTD_LEVEL|$ANYCASTD_PREFIXES|$ANYCASTD_SEQ\" >> {}",
        log.display()
    );
    let sections = format!(
        "[hooks]\non_transition = [{{ command = \"/bin/sh\", args = [\"-c\", {hook:?}] }}]\n"
    );
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService {
            sections: &sections,
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    let lines = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "{text}\n{}", daemon.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    lines(1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args([
            "drain",
            "dns",
            "--reason",
            "maintenance",
            "--grace",
            "1s",
            "-c",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("GRACEFUL_SHUTDOWN"),
        "{out:?}"
    );
    let lines = lines(3);
    assert!(
        lines[1].starts_with("healthy|draining|drained|1|graceful-shutdown|203.0.113.53/32|"),
        "{lines:?}"
    );
    // The grace's end: withdrawn, run as any withdrawal, for its own record.
    let (head, seq) = lines[2].rsplit_once('|').unwrap();
    assert_eq!(
        head, "draining|draining|the drain's grace is over|0|withdrawn|203.0.113.53/32",
        "{lines:?}"
    );
    let records = history(&config);
    let ended = records
        .iter()
        .find(|r| r["record"]["Transition"]["cause"] == "GraceEnded")
        .unwrap();
    assert_eq!(ended["seq"].as_u64().unwrap().to_string(), seq);
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = daemon.wait(Duration::from_secs(30));
}
