//! The Prometheus endpoint: parsed by a real exposition-format parser, its values follow a
//! check flip; an address already in use is fatal at start (exit 70).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

fn config(dir: &Path, url: &str, listen: &str) -> std::path::PathBuf {
    one_service_config(
        dir,
        &format!(r#"[{{ name = "dns", url = "{url}", interval = "100ms" }}]"#),
        OneService {
            sections: &format!("[metrics]\nlisten = {listen:?}\n"),
            ..OneService::default()
        },
    )
}

fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"),
        "{head}"
    );
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_parse_as_prometheus_text_and_follow_a_flip() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let config = config(dir.path(), &emulator.url(), &addr);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = [("service", "dns"), ("state", "healthy")];
    loop {
        if let Ok(true) = std::panic::catch_unwind(|| {
            value(&scrape(&addr), "anycastd_service_state", &healthy) == Some(1.0)
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emulator.set("dns", Behaviour::Status(500));
    let unhealthy = [("service", "dns"), ("state", "unhealthy")];
    let scraped = loop {
        let s = scrape(&addr);
        if value(&s, "anycastd_service_state", &unhealthy) == Some(1.0) {
            break s;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        value(&scraped, "anycastd_service_state", &healthy),
        Some(0.0)
    );
    assert_eq!(
        value(
            &scraped,
            "anycastd_service_transitions_total",
            &[("service", "dns"), ("from", "healthy"), ("to", "unhealthy")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &scraped,
            "anycastd_check_results_total",
            &[
                ("check", "dns"),
                ("kind", "cabourotte"),
                ("shadow", "false"),
                ("result", "fail")
            ]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        value(
            &scraped,
            "anycastd_check_results_total",
            &[("check", "dns"), ("result", "pass")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        value(
            &scraped,
            "anycastd_check_duration_seconds_count",
            &[("check", "dns")]
        )
        .unwrap()
            >= 2.0
    );
    assert!(value(&scraped, "anycastd_vtysh_calls_total", &[]).unwrap() >= 1.0);
    // Counters that alerts take increase() of are there before anything happened.
    for (name, labels) in [
        ("anycastd_drift_repairs_total", &[("service", "dns")][..]),
        ("anycastd_drains_total", &[("service", "dns")][..]),
        ("anycastd_vtysh_errors_total", &[][..]),
        ("anycastd_journal_errors_total", &[][..]),
        (
            "anycastd_service_transitions_total",
            &[("service", "dns"), ("from", "unhealthy"), ("to", "healthy")][..],
        ),
        ("anycastd_routing_restarts_total", &[("backend", "frr")][..]),
    ] {
        assert_eq!(value(&scraped, name, labels), Some(0.0), "{name}");
    }
    // The fake vtysh is a script that names no vty socket: restart detection watches FRR's
    // default one, and is off while that is not there although the fake answers.
    let default_socket = std::path::Path::new("/var/run/frr/bgpd.vty").exists();
    assert_eq!(
        value(
            &scraped,
            "anycastd_routing_restart_detection",
            &[("backend", "frr")]
        ),
        Some(if default_socket { 1.0 } else { 0.0 })
    );
    assert_eq!(
        value(
            &scraped,
            "anycastd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // Read from FRR at the scrape: wanted withdrawn now, not configured (this FRR has no
    // BGP instance), FRR readable; no damping.
    let dns = [
        ("service", "dns"),
        ("prefix", "203.0.113.53/32"),
        ("backend", "frr"),
    ];
    assert_eq!(
        value(&scraped, "anycastd_prefix_wanted_announced", &dns),
        Some(0.0)
    );
    assert_eq!(
        value(&scraped, "anycastd_prefix_configured", &dns),
        Some(0.0)
    );
    assert_eq!(
        value(&scraped, "anycastd_prefix_advertised", &dns),
        Some(0.0)
    );
    assert_eq!(
        value(
            &scraped,
            "anycastd_routing_reachable",
            &[("backend", "frr")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scraped,
            "anycastd_service_suppressed",
            &[("service", "dns")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &scraped,
            "anycastd_service_damping_penalty",
            &[("service", "dns")]
        ),
        Some(0.0)
    );
    assert!(
        value(
            &scraped,
            "anycastd_routing_last_reconcile_timestamp_seconds",
            &[("backend", "frr")]
        )
        .unwrap()
            > 1.7e9
    );
    assert!(value(&scraped, "anycastd_journal_appends_total", &[]).unwrap() >= 3.0);
    assert!(
        value(
            &scraped,
            "anycastd_service_last_transition_timestamp_seconds",
            &[("service", "dns")]
        )
        .unwrap()
            > 1.7e9
    );
    // A reload makes the check a shadow check: its series moves to shadow="true", and the
    // old one goes.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "interval = \"100ms\" }",
            "interval = \"100ms\", shadow = true }",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["reload", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fail = |shadow: &'static str| [("check", "dns"), ("shadow", shadow), ("result", "fail")];
    let scraped = loop {
        let s = scrape(&addr);
        if value(&s, "anycastd_check_results_total", &fail("true")).is_some_and(|v| v >= 1.0) {
            break s;
        }
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        value(&scraped, "anycastd_check_results_total", &fail("false")),
        None
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

#[test]
fn a_metrics_address_in_use_is_fatal_with_exit_70() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = config(dir.path(), "http://127.0.0.1:9", &addr);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(70));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("metrics: cannot listen on {addr}")),
        "{err}"
    );
    assert!(
        !dir.path().join("ctl.sock").exists(),
        "the control socket is removed again"
    );
}

/// One request to the endpoint: (status code, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn status_healthz_and_readyz_are_served_beside_the_metrics() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let config = config(dir.path(), &emulator.url(), &addr);
    let _daemon = Daemon::start(&config, &dir.path().join("log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok((200, body)) = std::panic::catch_unwind(|| http(&addr, "GET", "/status")) {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            if json["services"][0]["state"] == "healthy" {
                break json;
            }
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The same document as `status --json` (what changes between the two reads aside).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["status", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["daemon_running"], cli["daemon_running"]);
    for field in ["name", "state", "since_ms", "rise", "fall"] {
        assert_eq!(
            status["services"][0][field], cli["services"][0][field],
            "{field}"
        );
    }
    assert_eq!(
        status["services"][0]["prefixes"],
        cli["services"][0]["prefixes"]
    );
    assert_eq!(http(&addr, "GET", "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(http(&addr, "GET", "/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(http(&addr, "HEAD", "/status"), (200, String::new()));
    assert_eq!(http(&addr, "POST", "/readyz").0, 405);
    assert_eq!(http(&addr, "DELETE", "/status").0, 405);
    assert_eq!(http(&addr, "GET", "/statusx").0, 404);
    assert_eq!(http(&addr, "GET", "/").0, 404);

    // FRR cannot be read any more: not ready, saying why; the process still answers.
    let vtysh = dir.path().join("vtysh");
    std::fs::write(&vtysh, "#!/bin/sh\necho '% vty broken'\nexit 1\n").unwrap();
    let (code, body) = http(&addr, "GET", "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with(&format!(
            "not ready: FRR through {}: vtysh {}: exit 1: % vty broken",
            vtysh.display(),
            vtysh.display()
        )),
        "{body}"
    );
    assert_eq!(http(&addr, "GET", "/healthz").0, 200);
    // The scrape says so too, and drops the prefix gauges it cannot know.
    let scraped = scrape(&addr);
    assert_eq!(
        value(
            &scraped,
            "anycastd_routing_reachable",
            &[("backend", "frr")]
        ),
        Some(0.0)
    );
    assert_eq!(value(&scraped, "anycastd_prefix_configured", &[]), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_level_gauge_follows_a_deprefer_service_and_a_drain_grace_gives_its_end() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService {
            sections: &format!("[metrics]\nlisten = {addr:?}\n"),
            service:
                "on_unhealthy = \"deprefer\"\ndeprefer = { med = 1000 }\ndrain_grace = \"1h\"\n",
            ..OneService::default()
        },
    );
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    let level = |s: &prometheus_parse::Scrape, level: &str| {
        value(
            s,
            "anycastd_prefix_level",
            &[
                ("service", "dns"),
                ("prefix", "203.0.113.53/32"),
                ("level", level),
            ],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait_level = |name: &'static str| {
        let addr = addr.clone();
        async move {
            loop {
                if let Ok(s) = std::panic::catch_unwind(|| scrape(&addr)) {
                    if level(&s, name) == Some(1.0) {
                        return s;
                    }
                }
                assert!(Instant::now() < deadline, "never {name}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let s = wait_level("normal").await;
    for other in ["de-preferred", "graceful-shutdown", "withdrawn"] {
        assert_eq!(level(&s, other), Some(0.0), "{other}");
    }
    assert_eq!(
        value(
            &s,
            "anycastd_service_grace_end_timestamp_seconds",
            &[("service", "dns")]
        ),
        Some(0.0)
    );
    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    let s = wait_level("de-preferred").await;
    assert_eq!(level(&s, "normal"), Some(0.0));
    assert_eq!(level(&s, "withdrawn"), Some(0.0));

    let drained_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
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
    let s = wait_level("graceful-shutdown").await;
    assert_eq!(level(&s, "de-preferred"), Some(0.0));
    let end = value(
        &s,
        "anycastd_service_grace_end_timestamp_seconds",
        &[("service", "dns")],
    )
    .unwrap();
    assert!(
        (end - (drained_at + 3600.0)).abs() < 30.0,
        "grace end {end}, drained at {drained_at}"
    );
    // In a grace of an hour: ended without one.
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(30));
}
