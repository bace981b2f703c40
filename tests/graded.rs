//! Graded announcements through the whole daemon, FRR played by
//! `tests/support/fake_vtysh.py`: a stop with a drain grace keeps the service announced until
//! the grace ends, then withdraws it (a service without a grace is withdrawn at once); a second
//! SIGTERM in the grace withdraws at once; `stop --grace 0` overrides a configured grace; the
//! journal says the level and the grace's end. What the routing daemons announce with the
//! GRACEFUL_SHUTDOWN community is the backends' tests' (tests/frr.rs, tests/bird.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::Daemon;
use support::fake_frr::{fake_frr_config, fake_vtysh, networks};

const DNS: &str = "default:203.0.113.53/32";
const NTP: &str = "123:203.0.113.123/32";

/// The fake-FRR config with `drain_grace = GRACE` for service dns (ntp has none).
fn config_with_grace(dir: &Path, url: &str, grace: &str) -> std::path::PathBuf {
    let config = fake_frr_config(dir, url, &fake_vtysh(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[services.dns]\n",
        &format!("[services.dns]\ndrain_grace = {grace:?}\n"),
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn started(grace: &str) -> (tempfile::TempDir, Emulator, Daemon, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_grace(dir.path(), &emulator.url(), grace);
    let daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for(&daemon, "both announced", || {
        let n = networks(dir.path());
        n.contains(&DNS.to_owned()) && n.contains(&NTP.to_owned())
    });
    (dir, emulator, daemon, rt)
}

fn wait_for(daemon: &Daemon, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn history(dir: &Path, service: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", service, "-c"])
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sigterm_keeps_a_service_with_a_grace_announced_until_the_grace_ends_and_withdraws_the_others_at_once(
) {
    let (dir, _emulator, mut daemon, _rt) = started("3s");
    let signalled = Instant::now();
    daemon.signal(Signal::SIGTERM);
    // ntp has no grace: withdrawn at once; dns stays announced meanwhile.
    wait_for(&daemon, "ntp withdrawn", || {
        !networks(dir.path()).contains(&NTP.to_owned())
    });
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "dns withdrawn before its grace ended"
    );
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "the stop did not wait for the grace"
    );
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    let text = history(dir.path(), "dns");
    assert!(
        text.contains("announced graceful shutdown until") && text.contains("community 65535:0"),
        "{text}"
    );
    assert!(text.contains("the stop's grace is over"), "{text}");
    // A service without a grace journals as before graded announcements.
    assert!(!history(dir.path(), "ntp").contains("graceful"));
}

#[test]
fn a_second_sigterm_in_the_grace_withdraws_at_once() {
    let (dir, _emulator, mut daemon, _rt) = started("1h");
    daemon.signal(Signal::SIGTERM);
    wait_for(&daemon, "ntp withdrawn", || {
        !networks(dir.path()).contains(&NTP.to_owned())
    });
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "in its grace"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(
        daemon.wait(Duration::from_secs(30)),
        0,
        "{}",
        daemon.log_text()
    );
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    assert!(history(dir.path(), "dns").contains("the stop's grace is over"));
}

#[test]
fn stop_with_grace_zero_while_a_stop_waits_out_its_grace_withdraws_at_once() {
    let (dir, _emulator, mut daemon, _rt) = started("1h");
    daemon.signal(Signal::SIGTERM);
    wait_for(&daemon, "ntp withdrawn", || {
        !networks(dir.path()).contains(&NTP.to_owned())
    });
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "in its grace"
    );
    // The second stop ends the grace and is answered with the stop's outcome.
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["stop", "--grace", "0", "-c"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", daemon.log_text());
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    assert!(history(dir.path(), "dns").contains("the stop's grace is over"));
}

#[test]
fn stop_with_grace_zero_overrides_a_configured_grace() {
    let (dir, _emulator, mut daemon, _rt) = started("1h");
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["stop", "--grace", "0", "-c"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", daemon.log_text());
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    assert_eq!(networks(dir.path()), Vec::<String>::new());
    let text = history(dir.path(), "dns");
    assert!(!text.contains("graceful"), "{text}");
}

#[test]
fn drain_with_a_grace_keeps_the_service_announced_until_the_grace_ends() {
    let (dir, _emulator, mut daemon, _rt) = started("0");
    let drained = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args([
            "drain",
            "dns",
            "--reason",
            "maintenance",
            "--grace",
            "2s",
            "-c",
        ])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // It says what the routing daemon was asked and showed: announced in its grace, not
    // withdrawn.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("announced with GRACEFUL_SHUTDOWN (community 65535:0) until ")
            && said.contains("prefix(es) announced")
            && !said.contains("withdrawn;"),
        "{said}"
    );
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "in its grace"
    );
    wait_for(&daemon, "dns withdrawn", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    assert!(drained.elapsed() >= Duration::from_secs(2));
    assert!(
        networks(dir.path()).contains(&NTP.to_owned()),
        "ntp untouched"
    );
    // The log says the grace, not the original's "denouncing" at its start.
    assert!(
        daemon
            .log_text()
            .contains("is draining, announcing related prefixes with GRACEFUL_SHUTDOWN (community 65535:0) until "),
        "{}",
        daemon.log_text()
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

#[test]
fn sigkill_in_a_drain_grace_and_a_restart_keep_the_grace_to_its_journaled_end() {
    let (dir, _emulator, mut daemon, _rt) = started("0");
    let drained = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args([
            "drain",
            "dns",
            "--reason",
            "maintenance",
            "--grace",
            "6s",
            "-c",
        ])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(30));
    assert!(networks(dir.path()).contains(&DNS.to_owned()));
    let mut daemon = Daemon::start(&dir.path().join("config.toml"), &dir.path().join("log2"));
    daemon.wait_log("is kept announced");
    // Restored in its grace: still announced, not withdrawn at the start.
    assert!(
        drained.elapsed() < Duration::from_secs(6),
        "the machine was too slow for this test"
    );
    assert!(
        networks(dir.path()).contains(&DNS.to_owned()),
        "withdrawn at the restart, before the grace's end\n{}",
        daemon.log_text()
    );
    wait_for(&daemon, "dns withdrawn at the grace's end", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    assert!(
        drained.elapsed() >= Duration::from_secs(6),
        "withdrawn before the journaled end"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    let text = history(dir.path(), "dns");
    assert!(text.contains("the drain's grace is over"), "{text}");
}

/// `anycastd status [--json] [--check]` against the running daemon's config.
fn status(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .arg("status")
        .args(args)
        .arg("-c")
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn status_shows_the_wanted_level_beside_the_installed_and_advertised_one_and_their_drift() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    // A long reconcile interval: the drift made below stays until status has shown it.
    let config = fake_frr_config(
        dir.path(),
        &emulator.url(),
        &fake_vtysh(),
        "reconcile_interval = \"10m\"",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[services.dns]\n",
        "[services.dns]\non_unhealthy = \"deprefer\"\n\
         deprefer = { as_path_prepend = 3, med = 1000, communities = [\"65000:666\"] }\n",
    );
    std::fs::write(&config, text).unwrap();
    // While this file exists the fake FRR refuses changes: the drift made below stays.
    let hang = dir.path().join("hang");
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("log"),
        &[("FAKE_VTYSH_HANG", hang.to_str().unwrap())],
    );
    wait_for(&daemon, "both announced", || {
        let n = networks(dir.path());
        n.contains(&DNS.to_owned()) && n.contains(&NTP.to_owned())
    });
    // Healthy: normal, plain, and the prefix lines say nothing more than before.
    let (_, json) = status(dir.path(), &["--json", "dns"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dns = &v["services"][0];
    assert_eq!(dns["level"]["name"], "normal", "{json}");
    assert_eq!(dns["level"]["attributes"]["as_path_prepend"], 0, "{json}");
    let (_, plain) = status(dir.path(), &["dns"]);
    assert!(!plain.contains("installed"), "{plain}");

    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    let wanted = serde_json::json!({
        "as_path_prepend": 3, "med": 1000, "communities": ["65000:666"], "large_communities": []
    });
    wait_for(&daemon, "dns de-preferred in FRR", || {
        let (_, json) = status(dir.path(), &["--json", "dns"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["services"][0]["prefixes"][0]["installed_attributes"] == wanted
    });
    let (code, json) = status(dir.path(), &["--json", "dns"]);
    assert_eq!(code, Some(0), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dns = &v["services"][0];
    assert_eq!(dns["level"]["name"], "de-preferred", "{json}");
    assert_eq!(dns["level"]["attributes"], wanted, "{json}");
    assert_eq!(dns["level"]["grace_end_ms"], serde_json::Value::Null);
    for p in dns["prefixes"].as_array().unwrap() {
        assert_eq!(p["installed_attributes"], wanted, "{json}");
        assert_eq!(p["installed_level"], "de-preferred", "{json}");
        // Read from `show bgp ... json`'s best path.
        assert_eq!(p["advertised_attributes"], wanted, "{json}");
        assert_eq!(p["advertised_level"], "de-preferred", "{json}");
        assert_eq!(p["attributes_differ"], false, "{json}");
        assert_eq!(p["drift"], false, "{json}");
    }
    let (_, text) = status(dir.path(), &["dns"]);
    assert!(
        text.contains(
            "; installed de-preferred (as-path +3, MED 1000, community 65000:666), \
             advertised de-preferred (as-path +3, MED 1000, community 65000:666)"
        ),
        "{text}"
    );

    // Someone takes the map off the network line: the route stays, plain. Drift (which the
    // writer cannot repair while the fake FRR refuses changes).
    std::fs::write(&hang, "").unwrap();
    // Under the fake vtysh's lock: each of its calls rewrites the state.
    let took = Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl, json, sys\n\
             with open(sys.argv[1] + '.lock', 'w') as lock:\n\
             \x20   fcntl.flock(lock, fcntl.LOCK_EX)\n\
             \x20   state = json.load(open(sys.argv[1]))\n\
             \x20   del state['network_maps']['default']['203.0.113.53/32']\n\
             \x20   json.dump(state, open(sys.argv[1], 'w'))\n",
        )
        .arg(dir.path().join("frr.json"))
        .status()
        .unwrap();
    assert!(took.success(), "the prefix had a map");
    let (_, json) = status(dir.path(), &["--json", "dns"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &v["services"][0]["prefixes"][0];
    assert_eq!(p["prefix"], "203.0.113.53/32");
    assert_eq!(p["installed_level"], "normal", "{json}");
    assert_eq!(p["attributes_differ"], true, "{json}");
    // Drift, or a repair under way (that the fake FRR refuses).
    assert!(p["drift"] == true || p["applying"] == true, "{json}");
    assert_eq!(
        v["services"][0]["prefixes"][1]["drift"], false,
        "the other prefix: {json}"
    );
    let (_, text) = status(dir.path(), &["dns"]);
    let line = text
        .lines()
        .find(|l| l.contains("203.0.113.53/32"))
        .unwrap_or_default();
    assert!(
        line.contains("wanted de-preferred (as-path +3, MED 1000, community 65000:666), ")
            && line.contains("installed normal (plain) in FRR")
            && ["DRIFT", "MISMATCH", "being applied"]
                .iter()
                .any(|w| line.contains(w)),
        "{text}"
    );
    std::fs::remove_file(&hang).unwrap();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

#[test]
fn a_reload_changing_on_unhealthy_journals_the_level_and_says_what_changed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let plain = std::fs::read_to_string(&config).unwrap();
    let graded = plain.replace(
        "[services.dns]\n",
        "[services.dns]\non_unhealthy = \"deprefer\"\ndeprefer = { as_path_prepend = 2 }\n",
    );
    std::fs::write(&config, &graded).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for(&daemon, "both announced", || {
        let n = networks(dir.path());
        n.contains(&DNS.to_owned()) && n.contains(&NTP.to_owned())
    });
    emulator.set("dns", Behaviour::Fail("resolver down".into()));
    wait_for(&daemon, "de-preferred", || {
        history(dir.path(), "dns").contains("announced de-preferred (as-path +2)")
    });
    assert!(networks(dir.path()).contains(&DNS.to_owned()));
    let reload = |dir: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["reload", "-c"])
            .arg(dir.join("config.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Back to withdraw: the unhealthy service is withdrawn, and the journal says so.
    std::fs::write(&config, &plain).unwrap();
    let said = reload(dir.path());
    assert!(
        said.contains("on_unhealthy deprefer -> withdraw")
            && said.contains("deprefer (as-path +2) -> none")
            && !said.contains("settings of a check"),
        "{said}"
    );
    wait_for(&daemon, "dns withdrawn", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    // The level record decides the withdrawal: FRR's outcome folds into it (journaled
    // once FRR showed it).
    wait_for(&daemon, "the withdrawal's outcome", || {
        history(dir.path(), "dns")
            .split("reconfigured by the reload")
            .nth(1)
            .unwrap_or_default()
            .contains(" dns withdrawn; FRR applied in ")
    });
    // And deprefer again: announced de-preferred in place, journaled.
    std::fs::write(&config, &graded).unwrap();
    reload(dir.path());
    wait_for(&daemon, "dns de-preferred again", || {
        networks(dir.path()).contains(&DNS.to_owned())
    });
    wait_for(&daemon, "the de-preference's outcome", || {
        history(dir.path(), "dns")
            .split("reconfigured by the reload")
            .nth(2)
            .unwrap_or_default()
            .contains(" dns announced de-preferred (as-path +2); FRR applied in ")
    });
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

/// What the fake FRR had of dns's IPv4 prefix, sampled every 10 ms until `stop` is set:
/// (ms since the epoch, configured, with a route-map).
type Samples = std::sync::Arc<std::sync::Mutex<Vec<(i64, bool, bool)>>>;

fn watch_dns(
    dir: &Path,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (std::thread::JoinHandle<()>, Samples) {
    let samples: Samples = Default::default();
    let (dir, into) = (dir.to_owned(), samples.clone());
    let handle = std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let state: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("frr.json")).unwrap_or_else(|_| "{}".into()),
            )
            .unwrap_or_default();
            let present = networks(&dir).contains(&DNS.to_owned());
            let mapped = !state["network_maps"]["default"]["203.0.113.53/32"].is_null();
            into.lock()
                .unwrap()
                .push((support::oracle::now_ms(), present, present && mapped));
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (handle, samples)
}

/// By hand from the samples between `from` and `to`: how long the prefix was absent, and
/// how long present with a route-map.
fn absent_and_mapped(samples: &[(i64, bool, bool)], from: i64, to: i64) -> (i64, i64) {
    let (mut absent, mut mapped) = (0, 0);
    for pair in samples.windows(2) {
        let (a, present, map) = pair[0];
        let b = pair[1].0;
        let span = b.min(to) - a.max(from);
        if span <= 0 {
            continue;
        }
        if !present {
            absent += span;
        } else if map {
            mapped += span;
        }
    }
    (absent, mapped)
}

fn json_of(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(dir.join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_reload_switching_on_unhealthy_mid_failure_is_counted_as_what_frr_had_and_said_and_hooked() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = fake_frr_config(dir.path(), &emulator.url(), &fake_vtysh(), "");
    let hooked = dir.path().join("hooked");
    let hook = format!(
        "[ \"$ANYCASTD_SERVICE\" = dns ] && echo \"$ANYCASTD_FROM|$ANYCASTD_TO|$ANYCASTD_CAUSE|$ANYCASTD_LEVEL|$ANYCASTD_ANNOUNCE|$ANYCASTD_PREFIXES\" >> {}; true",
        hooked.display()
    );
    let plain = format!(
        "{}[hooks]\non_transition = [{{ command = \"/bin/sh\", args = [\"-c\", {hook:?}] }}]\n",
        std::fs::read_to_string(&config).unwrap()
    );
    let graded = plain.replace(
        "[services.dns]\n",
        "[services.dns]\non_unhealthy = \"deprefer\"\ndeprefer = { as_path_prepend = 2 }\n",
    );
    std::fs::write(&config, &plain).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for(&daemon, "both announced", || {
        let n = networks(dir.path());
        n.contains(&DNS.to_owned()) && n.contains(&NTP.to_owned())
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (watcher, samples) = watch_dns(dir.path(), stop.clone());
    let in_frr = |dir: &Path| -> (bool, bool) {
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("frr.json")).unwrap_or_else(|_| "{}".into()),
        )
        .unwrap_or_default();
        let present = networks(dir).contains(&DNS.to_owned());
        (
            present,
            present && !state["network_maps"]["default"]["203.0.113.53/32"].is_null(),
        )
    };
    let reload = |text: &str| -> String {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["reload", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pause = || std::thread::sleep(Duration::from_millis(1500));

    // Each change's time from the test's action to FRR showing it: the report's times
    // (from the decisions) and FRR's differ by at most these.
    let mut latency = 0;
    let mut step = |what: &str, act: &mut dyn FnMut(), wanted: (bool, bool)| {
        let acted = support::oracle::now_ms();
        act();
        wait_for(&daemon, what, || in_frr(dir.path()) == wanted);
        latency += support::oracle::now_ms() - acted;
        pause();
    };
    let mut said_deprefer = String::new();
    let mut said_withdraw = String::new();
    let fail = || emulator.set("dns", Behaviour::Fail("resolver down".into()));
    let pass = || emulator.set("dns", Behaviour::Pass);
    // Fails under withdraw: withdrawn. A reload to deprefer: announced de-preferred.
    step("dns withdrawn", &mut || fail(), (false, false));
    step(
        "dns de-preferred",
        &mut || said_deprefer = reload(&graded),
        (true, true),
    );
    step("dns plain", &mut || pass(), (true, false));
    // Fails under deprefer: de-preferred. A reload back to withdraw: withdrawn.
    step("dns de-preferred again", &mut || fail(), (true, true));
    step(
        "dns withdrawn again",
        &mut || said_withdraw = reload(&plain),
        (false, false),
    );
    step("dns back", &mut || pass(), (true, false));
    let stopped_at = support::oracle::now_ms();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();

    // The report counts what FRR had: two withdrawals (the fall under withdraw, the reload
    // back to withdraw), two outages as long as the prefix was absent, and de-preferred as
    // long as it carried the map; within each change's apply time.
    let report = json_of(dir.path(), &["report", "--json"]);
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "dns")
        .unwrap();
    let s = &row["summary"];
    let samples = samples.lock().unwrap().clone();
    let first = samples.first().unwrap().0;
    let (absent, mapped) = absent_and_mapped(&samples, first, stopped_at);
    assert_eq!(
        (s["flaps"].as_u64(), s["outages"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
    let slack = latency + 200;
    let outage = s["outage_ms"].as_i64().unwrap();
    let depreferred = s["depreferred_ms"].as_i64().unwrap();
    assert!(
        (outage - absent).abs() <= slack,
        "outage {outage} ms, FRR had it absent {absent} ms: {s}"
    );
    assert!(
        (depreferred - mapped).abs() <= slack,
        "de-preferred {depreferred} ms, FRR had it with the map {mapped} ms: {s}"
    );
    assert!(absent > 2_500 && mapped > 2_500, "{absent} {mapped}");
    // replay's recorded run says the same.
    let replayed = json_of(dir.path(), &["replay", "dns", "--json"]);
    assert_eq!(replayed["recorded"]["summary"], *s);
    assert!(
        replayed["divergences"].as_array().unwrap().is_empty(),
        "{replayed}"
    );

    // The journal: each reload's level decides its change, applied, never "already so".
    let text = history(dir.path(), "dns");
    let after = text
        .split("reconfigured")
        .skip(1)
        .collect::<Vec<_>>()
        .join("");
    assert!(!after.contains("already so"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" dns withdrawn; FRR applied")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(" dns announced de-preferred (as-path +2); FRR applied")),
        "{text}"
    );
    // The reloads' answers say what each did to the announcements.
    assert!(
        said_deprefer.contains(
            "so dns announces 203.0.113.53/32, 2001:db8::53/128 de-preferred (as-path +2) (unhealthy)"
        ),
        "{said_deprefer}"
    );
    assert!(
        said_withdraw.contains("so dns withdraws 203.0.113.53/32, 2001:db8::53/128 (unhealthy)"),
        "{said_withdraw}"
    );
    // And the hooks ran for each level change, the state unchanged.
    let lines = std::fs::read_to_string(&hooked).unwrap();
    let prefixes = "203.0.113.53/32 2001:db8::53/128";
    for line in [
        format!("unhealthy|unhealthy|level changed by a reload: announced de-preferred (as-path +2)|de-preferred|1|{prefixes}"),
        format!("unhealthy|unhealthy|level changed by a reload: withdrawn|withdrawn|0|{prefixes}"),
    ] {
        assert!(lines.lines().any(|l| l == line), "no {line} in\n{lines}");
    }
}

#[test]
fn a_drain_grace_kept_across_a_sigkill_is_reported_as_grace_then_drained_as_frr_had_it() {
    let (dir, _emulator, mut daemon, _rt) = started("0");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (watcher, samples) = watch_dns(dir.path(), stop.clone());
    let drained_at = support::oracle::now_ms();
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args([
            "drain",
            "dns",
            "--reason",
            "maintenance",
            "--grace",
            "8s",
            "-c",
        ])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The drain answers once FRR has the map. The grace is long enough for the restart
    // to come well before its end (a loaded machine took 3 s to apply the drain).
    let drain_latency = support::oracle::now_ms() - drained_at;
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let mut daemon = Daemon::start(&dir.path().join("config.toml"), &dir.path().join("log2"));
    wait_for(&daemon, "dns withdrawn at the grace's end", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    let absent_seen = support::oracle::now_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let stopped_at = support::oracle::now_ms();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    watcher.join().unwrap();

    let replayed = json_of(dir.path(), &["replay", "dns", "--json"]);
    let gaps: i64 = replayed["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["to_ms"].as_i64().unwrap() - g["from_ms"].as_i64().unwrap())
        .sum();
    let grace_ended = replayed["recorded"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "grace-ended")
        .map(|s| s["at_ms"].as_i64().unwrap())
        .unwrap();
    let report = json_of(dir.path(), &["report", "--json"]);
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "dns")
        .unwrap();
    let s = &row["summary"];
    assert_eq!(*s, replayed["recorded"]["summary"]);
    // By hand from what FRR had: with the map (GRACEFUL_SHUTDOWN) from the drain to the
    // grace's end, the killed daemon's gap aside (nothing is measured there); absent from
    // then to the stop. The report counts from the decisions, FRR from their application:
    // they differ by at most the drain's and the withdrawal's time to reach FRR.
    // To the stop record (the report's end; after SIGTERM the prefix stays absent).
    let samples = samples.lock().unwrap().clone();
    let first = samples.first().unwrap().0;
    let ended = report["to_ms"].as_i64().unwrap();
    assert!(ended >= stopped_at);
    let (absent, mapped) = absent_and_mapped(&samples, first, ended);
    let withdraw_latency = absent_seen - grace_ended;
    let (grace, drained) = (
        s["grace_ms"].as_i64().unwrap(),
        s["drained_ms"].as_i64().unwrap(),
    );
    let slack = drain_latency + withdraw_latency + 200;
    assert!(
        (grace + gaps - mapped).abs() <= slack,
        "grace {grace} ms + gap {gaps} ms, FRR had the map {mapped} ms (slack {slack}): {s}"
    );
    assert!(
        (drained - absent).abs() <= withdraw_latency + 200,
        "drained {drained} ms, FRR had it absent {absent} ms: {s}\n{}",
        history(dir.path(), "dns")
    );
    assert_eq!(
        (s["outages"].as_u64(), s["flaps"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn status_of_a_service_whose_stop_grace_ended_shows_no_rules_of_zero() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = rt.block_on(Emulator::start(Generation::V2));
    emulator.set("dns", Behaviour::Pass);
    emulator.set("ntp", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_grace(dir.path(), &emulator.url(), "1s");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[services.ntp]\n", "[services.ntp]\ndrain_grace = \"1h\"\n");
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    wait_for(&daemon, "both announced", || {
        let n = networks(dir.path());
        n.contains(&DNS.to_owned()) && n.contains(&NTP.to_owned())
    });
    daemon.signal(Signal::SIGTERM);
    // dns's grace ends; the stop waits for ntp's.
    wait_for(&daemon, "dns withdrawn", || {
        !networks(dir.path()).contains(&DNS.to_owned())
    });
    assert!(networks(dir.path()).contains(&NTP.to_owned()));
    let (_, text) = status(dir.path(), &["dns"]);
    assert!(text.starts_with("dns: draining (shutdown)"), "{text}");
    assert!(!text.contains("rise 0"), "{text}");
    let (_, json) = status(dir.path(), &["--json", "dns"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"][0]["rise"], serde_json::Value::Null, "{json}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
    assert!(history(dir.path(), "dns").contains("the stop's grace is over"));
}
