//! The poll loop asks Cabourotte at most N+1 times per check in N intervals, whatever the
//! answers are: a failure waits for the next interval (no hot retry loop). The first poll is
//! immediate and the next ones fall on a grid shared by every check of that interval, the
//! first of them on the first grid point after it, so no gap between polls exceeds the
//! interval, whatever the check's place in the file, after every start; the API generation
//! probe costs one extra request once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::checks::cabourotte::{http_client, CabourotteCheck, MAX_CONNECTIONS_PER_SERVER};
use anycastd::checks::scheduler::Polling;
use anycastd_fsm::Observation;
use nix::sys::signal::Signal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::Daemon;

const INTERVAL: Duration = Duration::from_millis(200);
const INTERVALS: u32 = 10;

async fn requests_in_ten_intervals(generation: Generation, behaviour: Behaviour) -> (u64, usize) {
    let emulator = Emulator::start(generation).await;
    emulator.set("c", behaviour);
    let (tx, mut rx) = anycastd::checks::scheduler::results();
    let client = http_client().unwrap();
    let check = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "c",
        Duration::from_millis(50),
        None,
    );
    let polling = Polling::new();
    let watch = polling.watch(Box::new(check), INTERVAL, 0, tx);
    // Just short of N intervals: ticks at 0, 1, ..., N-1 intervals.
    tokio::time::sleep(INTERVAL * INTERVALS - Duration::from_millis(30)).await;
    drop(watch);
    let mut observations = 0;
    while rx.try_recv().is_some() {
        observations += 1;
    }
    (emulator.requests("c"), observations)
}

#[tokio::test]
async fn at_most_n_plus_one_requests_in_n_intervals_for_every_kind_of_answer() {
    let cases = [
        (Generation::V2, Behaviour::Pass),
        (Generation::V2, Behaviour::Status(500)),
        (Generation::V2, Behaviour::Malformed),
        (Generation::V2, Behaviour::NotFound),
        (Generation::V2, Behaviour::Hang),
        (Generation::V1, Behaviour::Pass),
        (Generation::V1, Behaviour::Fail("down".into())),
    ];
    for (generation, behaviour) in cases {
        let (requests, observations) =
            requests_in_ten_intervals(generation, behaviour.clone()).await;
        // The 1.x route is found by a first request to the 2.x one.
        let probe = u64::from(generation == Generation::V1);
        assert!(
            requests <= u64::from(INTERVALS) + 1 + probe,
            "{generation:?} {behaviour:?}: {requests} requests in {INTERVALS} intervals"
        );
        assert!(
            observations >= 1 && observations <= INTERVALS as usize + 1,
            "{behaviour:?}: {observations} observations"
        );
    }
}

#[tokio::test]
async fn every_check_of_a_server_is_polled_each_interval_over_a_bounded_pool() {
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let polling = Polling::new();
    let (tx, mut rx) = anycastd::checks::scheduler::results();
    let watches: Vec<_> = (0..100)
        .map(|i| {
            let name = format!("c{i}");
            emulator.set(&name, Behaviour::Pass);
            let check = CabourotteCheck::new(
                &client,
                &emulator.url(),
                &name,
                Duration::from_secs(1),
                None,
            );
            polling.watch(Box::new(check), INTERVAL, i, tx.clone())
        })
        .collect();
    tokio::time::sleep(INTERVAL * INTERVALS).await;
    let mut seen = vec![0u32; 100];
    while let Some(polled) = rx.try_recv() {
        assert_eq!(
            polled.observation,
            Observation::Pass,
            "check {}",
            polled.check
        );
        seen[polled.check] += 1;
    }
    for (i, n) in seen.iter().enumerate() {
        // N intervals from the first poll hold N or N+1 polls; a loaded machine may lose one
        // or two rounds' worth, never most of them.
        assert!(
            (INTERVALS - 3..=INTERVALS + 1).contains(n),
            "check {i}: {n} results in {INTERVALS} intervals"
        );
        assert!(emulator.requests(&format!("c{i}")) <= u64::from(INTERVALS) + 1);
    }
    assert!(
        emulator.connections() <= MAX_CONNECTIONS_PER_SERVER as u64,
        "{} connections",
        emulator.connections()
    );
    // Dropping the watches stops the polls.
    drop(watches);
    tokio::time::sleep(INTERVAL).await;
    let before: u64 = (0..100).map(|i| emulator.requests(&format!("c{i}"))).sum();
    tokio::time::sleep(INTERVAL * 3).await;
    let after: u64 = (0..100).map(|i| emulator.requests(&format!("c{i}"))).sum();
    assert_eq!(before, after, "no poll after the watches are dropped");
}

#[tokio::test]
async fn a_check_queued_behind_a_silent_server_fails_after_its_timeout_without_a_request() {
    let emulator = Emulator::start(Generation::V2).await;
    let client = http_client().unwrap();
    let polling = Polling::new();
    let (tx, mut rx) = anycastd::checks::scheduler::results();
    // Every connection slot is taken by a request that will not be answered.
    let mut watches: Vec<_> = (0..MAX_CONNECTIONS_PER_SERVER)
        .map(|i| {
            let name = format!("hang{i}");
            emulator.set(&name, Behaviour::Hang);
            let check = CabourotteCheck::new(
                &client,
                &emulator.url(),
                &name,
                Duration::from_secs(3),
                None,
            );
            polling.watch(
                Box::new(check),
                Duration::from_secs(10),
                100 + i,
                tx.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    emulator.set("dns", Behaviour::Pass);
    let dns = CabourotteCheck::new(
        &client,
        &emulator.url(),
        "dns",
        Duration::from_millis(200),
        None,
    );
    let started = std::time::Instant::now();
    watches.push(polling.watch(Box::new(dns), Duration::from_secs(10), 0, tx.clone()));
    let polled = loop {
        let polled = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a result within 10 s");
        if polled.check == 0 {
            break polled;
        }
    };
    match &polled.observation {
        Observation::Fail(reason) => assert!(
            reason.contains("already in flight"),
            "unexpected reason: {reason}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it failed after its own timeout, not the hanging requests' ({:?})",
        started.elapsed()
    );
    assert_eq!(emulator.requests("dns"), 0, "it never reached the server");
}

/// Where the TCP listener of [`every_check_is_polled_every_interval_from_its_first_poll_after_every_start`]
/// keeps the time of each connection.
fn accept_times(listener: std::net::TcpListener) -> Arc<Mutex<Vec<SystemTime>>> {
    let times: Arc<Mutex<Vec<SystemTime>>> = Arc::default();
    let keep = times.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            keep.lock().unwrap().push(SystemTime::now());
            drop(stream);
        }
    });
    times
}

fn exec_times(path: &std::path::Path) -> Vec<SystemTime> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<u64>().ok())
        .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_is_polled_every_interval_from_its_first_poll_after_every_start() {
    // Given a daemon with six services of every kind of check but DNS, some with two checks
    // and one on another interval, each check's server keeping the time of each poll.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let emulator = Emulator::start(Generation::V2).await;
    let url = emulator.url();
    for name in ["c0", "c4a", "c4b", "h1", "h4"] {
        emulator.set(name, Behaviour::Pass);
    }
    let tcp2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp5 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (tcp2_addr, tcp5_addr) = (tcp2.local_addr().unwrap(), tcp5.local_addr().unwrap());
    let (tcp2_times, tcp5_times) = (accept_times(tcp2), accept_times(tcp5));
    let (exec3, exec5) = (d.join("exec3"), d.join("exec5"));
    let exec = |file: &std::path::Path, interval: &str| {
        format!(
            "{{ command = \"/bin/sh\", args = [\"-c\", \"date +%s%N >> {}\"], interval = \"{interval}\" }}",
            file.display()
        )
    };
    let vtysh = d.join("vtysh");
    std::fs::write(&vtysh, "#!/bin/sh\necho '!'\n").unwrap();
    std::fs::set_permissions(&vtysh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let services = [
        format!("checks.cabourotte = [{{ name = \"c0\", url = \"{url}\", interval = \"1s\" }}]"),
        format!("checks.http = [{{ url = \"{url}/api/v1/result/h1\", interval = \"1s\" }}]"),
        format!("checks.tcp = [{{ address = \"{tcp2_addr}\", interval = \"1s\" }}]"),
        format!("checks.exec = [{}]", exec(&exec3, "1s")),
        format!(
            "checks.cabourotte = [{{ name = \"c4a\", url = \"{url}\", interval = \"600ms\" }}, \
             {{ name = \"c4b\", url = \"{url}\", interval = \"600ms\" }}]\n\
             checks.http = [{{ url = \"{url}/api/v1/result/h4\", interval = \"600ms\" }}]"
        ),
        format!(
            "checks.tcp = [{{ address = \"{tcp5_addr}\", interval = \"1s\" }}]\nchecks.exec = [{}]",
            exec(&exec5, "1s")
        ),
    ];
    let mut config = format!(
        "[journal]\npath = {:?}\n[control]\nsocket = {:?}\n",
        d.join("journal").display().to_string(),
        d.join("ctl.sock").display().to_string()
    );
    for (i, checks) in services.iter().enumerate() {
        config.push_str(&format!(
            "\n[services.s{i}]\nprefixes.frrouting = [{{ prefix = \"203.0.113.{i}\", vtysh = {:?} }}]\n{checks}\n",
            vtysh.display().to_string()
        ));
    }
    let config_path = d.join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let one_s = Duration::from_secs(1);
    let fast = Duration::from_millis(600);

    // When it is started three times, the second start after a crash (SIGKILL), each run
    // lasting several intervals.
    let mut runs = Vec::new();
    for (start, stop) in [Signal::SIGTERM, Signal::SIGKILL, Signal::SIGTERM]
        .into_iter()
        .enumerate()
    {
        let log = d.join(format!("daemon{start}.log"));
        let begin = SystemTime::now();
        let mut daemon = Daemon::start(&config_path, &log);
        tokio::time::sleep(Duration::from_millis(4_500)).await;
        let end = SystemTime::now();
        daemon.signal(stop);
        let code = tokio::task::spawn_blocking(move || {
            let code = daemon.wait(Duration::from_secs(20));
            (code, daemon.log_text())
        })
        .await
        .unwrap();
        runs.push((begin, end, code));
    }

    // Then in every run every check's polls are never more than its interval apart (with
    // half an interval of slack for a loaded machine), from its first poll on.
    let checks: Vec<(&str, Duration, Vec<SystemTime>)> = vec![
        ("s0 cabourotte c0", one_s, emulator.request_times("c0")),
        ("s1 http h1", one_s, emulator.request_times("h1")),
        ("s2 tcp", one_s, tcp2_times.lock().unwrap().clone()),
        ("s3 exec", one_s, exec_times(&exec3)),
        ("s4 cabourotte c4a", fast, emulator.request_times("c4a")),
        ("s4 cabourotte c4b", fast, emulator.request_times("c4b")),
        ("s4 http h4", fast, emulator.request_times("h4")),
        ("s5 tcp", one_s, tcp5_times.lock().unwrap().clone()),
        ("s5 exec", one_s, exec_times(&exec5)),
    ];
    for (run, (begin, end, (code, log))) in runs.iter().enumerate() {
        if run != 1 {
            assert_eq!(*code, 0, "run {run} exit code; log:\n{log}");
        }
        for (check, interval, times) in &checks {
            let mut polls: Vec<Duration> = times
                .iter()
                .filter(|t| *t >= begin && *t <= end)
                .map(|t| t.duration_since(*begin).unwrap())
                .collect();
            polls.sort();
            let expected =
                (Duration::from_millis(4_500).as_millis() / interval.as_millis()) as usize;
            assert!(
                polls.len() >= expected.saturating_sub(1),
                "run {run}, {check}: {} polls in 4.5 s at {interval:?}: {polls:?}",
                polls.len()
            );
            for pair in polls.windows(2) {
                assert!(
                    pair[1] - pair[0] <= *interval + *interval / 2,
                    "run {run}, {check}: polled at {polls:?} after the start, a gap of {:?} at {interval:?}",
                    pair[1] - pair[0]
                );
            }
        }
    }
}
