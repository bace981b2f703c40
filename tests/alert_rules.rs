//! The alerting rules and the dashboard in `dist/`: the rules pass `promtool check rules` and
//! their unit tests (`promtool test rules`), and every metric name the rules and the dashboard
//! use is one a live daemon exports (read from its `/metrics`), so that they cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

fn dist(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(path)
}

/// promtool, or `None` after saying why the test is skipped (a failure where CI requires
/// everything).
fn promtool() -> Option<&'static str> {
    if Command::new("promtool").arg("--version").output().is_ok() {
        return Some("promtool");
    }
    support::skip::skip("promtool missing (apt-get install prometheus)");
    None
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    for args in [
        vec!["check", "rules", "anycastd-rules.yml"],
        vec!["test", "rules", "anycastd-rules.test.yml"],
    ] {
        let out = Command::new(promtool)
            .args(&args)
            .current_dir(dist("prometheus"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "promtool {args:?}: {text}");
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

/// The `anycastd_...` names in a text.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("anycastd_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        names.insert(text[start..end].to_owned());
        i = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_rules_and_the_dashboard_use_is_exported() {
    let rules = std::fs::read_to_string(dist("prometheus/anycastd-rules.yml")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist("grafana/anycastd.json")).unwrap())
            .unwrap();
    // The rules' expressions, and the dashboard's queries and variables.
    let mut exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(exprs.len(), 15, "one expression per alert");
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| names_in(e)).collect();
    assert!(used.len() >= 15, "{used:?}");

    // A daemon with an FRR prefix and a BIRD prefix (its BIRD absent), scraped once it has
    // decided.
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    // A fleet guard with a real etcd: the site counts are exported once it has read them
    // (never as zeros before: that would read as a fleet with nobody announcing).
    let etcd_server = support::etcd::Etcd::start();
    let etcd = match &etcd_server {
        Some(server) => server.url(),
        None => format!("http://127.0.0.1:{}", support::servers::free_port()),
    };
    let sections = format!(
        "[metrics]\nlisten = {addr:?}\n[bird]\ninclude_dir = {:?}\n[fleet]\netcd = [{etcd:?}]\nsite = \"t\"\n",
        dir.path().join("run").display().to_string()
    );
    let service = format!(
        "prefixes.bird = [{{ prefix = \"198.51.100.1\", socket = {:?} }}]\nfleet = {{ min_announcing = 1 }}\n",
        dir.path().join("no-bird.ctl").display().to_string()
    );
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService {
            sections: &sections,
            service: &service,
            ..OneService::default()
        },
    );
    let _daemon = Daemon::start(&config, &dir.path().join("log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (exported, scraped) = loop {
        let text = std::panic::catch_unwind(|| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            text
        })
        .unwrap_or_default();
        let samples: BTreeSet<String> = text
            .lines()
            .filter(|l| l.starts_with("anycastd_"))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        if samples.contains("anycastd_service_transitions_total")
            && samples.contains("anycastd_prefix_configured")
            && (etcd_server.is_none() || samples.contains("anycastd_fleet_sites"))
        {
            break (samples, text);
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut missing: Vec<&String> = used.difference(&exported).collect();
    if etcd_server.is_none() {
        // Skipped out loud by Etcd::start: the counts need an etcd that answers.
        missing.retain(|name| *name != "anycastd_fleet_sites");
    }
    assert!(
        missing.is_empty(),
        "used by the rules or the dashboard but not exported: {missing:?}"
    );

    // And what is exported passes Prometheus' own linter (names, types, suffixes).
    if let Some(promtool) = promtool() {
        let body = scraped
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
