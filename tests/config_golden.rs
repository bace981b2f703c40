//! Golden tests of the config loader: every `tests/golden/config/*.toml` is loaded; a valid one
//! is rendered to `NAME.out`, an invalid one to its exact error lines in `NAME.err`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test config_golden` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycastd::checks::cabourotte::Cabourotte;
use anycastd::config::{self, Config};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn render(config: &Config) -> String {
    let mut out = String::new();
    let j = &config.journal;
    out.push_str(&format!("journal.path = {}\n", j.path.display()));
    out.push_str(&format!(
        "journal.max_age = {:?} max_records_per_service = {} max_records = {} cache_mib = {}\n",
        j.max_age, j.max_records_per_service, j.max_records, j.cache_mib
    ));
    let c = &config.control;
    out.push_str(&format!(
        "control.socket = {} group = {:?} admin_group = {:?}\n",
        c.socket.display(),
        c.group,
        c.admin_group
    ));
    out.push_str(&format!("metrics.listen = {:?}\n", config.metrics_listen));
    let f = config
        .routing
        .get::<anycastd::routing::frr::Settings>("frrouting")
        .unwrap();
    out.push_str(&format!("frrouting.vtysh_args = {:?}\n", f.args));
    out.push_str(&format!("frrouting.vtysh_timeout = {:?}\n", f.timeout));
    out.push_str(&format!(
        "frrouting.reconcile_interval = {:?}\n",
        f.reconcile_interval
    ));
    if !f.vty_sockets.is_empty() {
        out.push_str(&format!("frrouting.vty_sockets = {:?}\n", f.vty_sockets));
    }
    let bird = config
        .routing
        .get::<anycastd::routing::bird::Settings>("bird")
        .unwrap();
    if *bird != anycastd::routing::bird::Settings::default() {
        out.push_str(&format!(
            "bird.include_dir = {} timeout = {:?} reconcile_interval = {:?}\n",
            bird.include_dir.display(),
            bird.timeout,
            bird.reconcile_interval
        ));
    }
    let gobgp = config
        .routing
        .get::<anycastd::routing::gobgp::Settings>("gobgp")
        .unwrap();
    if *gobgp != anycastd::routing::gobgp::Settings::default() {
        out.push_str(&format!(
            "gobgp.timeout = {:?} reconcile_interval = {:?}\n",
            gobgp.timeout, gobgp.reconcile_interval
        ));
    }
    for hook in &config.hooks {
        out.push_str(&format!(
            "hooks.on_transition {} {:?} timeout = {:?}\n",
            hook.command, hook.args, hook.timeout
        ));
    }
    out.push_str(&format!(
        "daemon.shutdown_timeout = {:?}\n",
        config.daemon.shutdown_timeout
    ));
    if config.netns_dir != std::path::Path::new("/run/netns") {
        out.push_str(&format!(
            "checks.netns_dir = {}\n",
            config.netns_dir.display()
        ));
    }
    if let Some(f) = &config.fleet {
        out.push_str(&format!(
            "fleet etcd = {:?} site = {} prefix = {} lease = {:?} on_unreachable = {} tls = {:?} user = {:?}\n",
            f.endpoints,
            f.site,
            f.prefix,
            f.lease,
            f.on_unreachable.name(),
            f.tls,
            f.user
        ));
    }
    for s in &config.services {
        out.push_str(&format!(
            "service {} rise={} fall={}\n",
            s.name, s.rise, s.fall
        ));
        if let Some(rule) = &s.fleet {
            out.push_str(&format!("  fleet {rule:?}\n"));
        }
        if s.require != 0 || s.fast_interval.is_some() {
            out.push_str(&format!(
                "  require={} fast_interval={:?}\n",
                s.require, s.fast_interval
            ));
        }
        if s.on_unhealthy != anycastd_fsm::OnUnhealthy::Withdraw
            || s.deprefer.is_some()
            || !s.drain_grace.is_zero()
        {
            out.push_str(&format!(
                "  on_unhealthy={:?} deprefer={} drain_grace={:?}\n",
                s.on_unhealthy,
                s.deprefer
                    .as_ref()
                    .map_or("(none)".to_owned(), ToString::to_string),
                s.drain_grace
            ));
        }
        if let Some(d) = &s.damping {
            out.push_str(&format!(
                "  damping penalty={} suppress={} reuse={} half_life={:?} max_suppress={:?}\n",
                d.penalty, d.suppress, d.reuse, d.half_life, d.max_suppress
            ));
        }
        for p in &s.prefixes {
            if p.backend.kind == anycastd::routing::bird::KIND {
                out.push_str(&format!(
                    "  prefix {} bird protocol={} socket={}\n",
                    p.prefix,
                    p.place.name().unwrap_or("(none)"),
                    p.backend.instance
                ));
                continue;
            }
            if p.backend.kind == anycastd::routing::gobgp::KIND {
                out.push_str(&format!(
                    "  prefix {} gobgp api={}\n",
                    p.prefix, p.backend.instance
                ));
                continue;
            }
            out.push_str(&format!(
                "  prefix {} vrf={} vtysh={}\n",
                p.prefix,
                p.place.name().unwrap_or("(default)"),
                p.backend.instance
            ));
        }
        for c in &s.checks {
            if c.shadow || c.vrf.is_some() {
                out.push_str(&format!(
                    "  check {} shadow={} vrf={:?}\n",
                    c.name, c.shadow, c.vrf
                ));
            }
            if c.hard {
                out.push_str(&format!("  check {} hard\n", c.name));
            }
            match (c.settings::<Cabourotte>(), &c.kind) {
                (Some(Cabourotte { url, max_age }), _) => out.push_str(&format!(
                    "  check {} url={} interval={:?} timeout={:?} pending_timeout={:?} max_age={:?}\n",
                    c.name, url, c.interval, c.timeout, c.pending_timeout, max_age
                )),
                (None, other) => out.push_str(&format!(
                    "  check {} kind={} interval={:?} timeout={:?} pending_timeout={:?}\n    {:?}\n",
                    c.name,
                    other.name(),
                    c.interval,
                    c.timeout,
                    c.pending_timeout,
                    other
                )),
            }
        }
    }
    out
}

fn golden_dir() -> PathBuf {
    Path::new("tests").join("golden").join("config")
}

#[test]
fn every_config_fixture_matches_its_golden_output() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "fixtures missing");
    let mut mismatches = Vec::new();
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let (ext, actual) = match config::load(&file, &anycastd::checks::REGISTRY) {
            Ok(config) => ("out", render(&config)),
            Err(e) => ("err", e.lines().join("\n") + "\n"),
        };
        assert_eq!(ext == "out", name.starts_with("ok_"), "{name}: {actual}");
        let golden = file.with_extension(ext);
        if update {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!(
                "--- {}\n{expected}+++ actual\n{actual}",
                golden.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatch:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn the_seed_readme_example_loads_with_the_original_defaults() {
    let config = config::load(
        &golden_dir().join("ok_seed_example.toml"),
        &anycastd::checks::REGISTRY,
    )
    .unwrap();
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["dns", "ntp"]);
    let dns = &config.services[0];
    assert_eq!(
        dns.prefixes[0].prefix.to_string(),
        "2001:db8::b19:bad:53/128"
    );
    assert_eq!(dns.prefixes[1].prefix.to_string(), "203.0.113.53/32");
    assert_eq!(dns.prefixes[0].place.name(), None);
    assert_eq!(
        dns.prefixes[0].backend,
        anycastd::routing::BackendId::frr(Path::new("/usr/bin/vtysh"))
    );
    assert_eq!(dns.checks[0].kind.identity(), "http://127.0.0.1:9013");
    assert_eq!(dns.checks[0].interval, Duration::from_secs(5));
    assert_eq!((dns.rise, dns.fall), (1, 1));
    let ntp = &config.services[1];
    assert_eq!(ntp.prefixes[0].place.name(), Some("123"));
    assert_eq!(ntp.checks[1].interval, Duration::from_secs(1));
    assert_eq!(ntp.checks[1].pending_timeout, Duration::from_secs(10));
}

#[test]
fn a_missing_file_and_a_directory_are_unreadable_not_invalid() {
    assert!(matches!(
        config::load(
            Path::new("tests/golden/config/does-not-exist.toml"),
            &anycastd::checks::REGISTRY
        ),
        Err(config::LoadError::Unreadable { .. })
    ));
    assert!(matches!(
        config::load(&golden_dir(), &anycastd::checks::REGISTRY),
        Err(config::LoadError::Unreadable { .. })
    ));
}

#[test]
fn every_toml_block_of_the_documentation_validates_and_the_examples_are_the_files() {
    let mut docs = std::fs::read_to_string("README.md").unwrap();
    for entry in std::fs::read_dir("docs").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs += &std::fs::read_to_string(path).unwrap();
        }
    }
    let blocks: Vec<&str> = docs
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 2, "the documentation lost its examples");
    for block in &blocks {
        // A fragment of a config (a section alone) gets a service to stand in a whole file.
        let text = if block.contains("[services.") {
            block.to_string()
        } else {
            format!("{block}\n[services.x]\nprefixes.frrouting = [\"192.0.2.1\"]\nchecks.cabourotte = []\n")
        };
        if let Err(problems) = config::parse(&text, &anycastd::checks::REGISTRY) {
            panic!("documented block does not validate: {problems:?}\n{block}");
        }
    }
    let without_comments = |path: &str| -> String {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    for example in ["examples/config.toml", "examples/builtin.toml"] {
        let text = without_comments(example);
        assert!(
            blocks.iter().any(|b| *b == text),
            "{example} is not shown as is in the documentation"
        );
    }
}
