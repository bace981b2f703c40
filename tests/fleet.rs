//! The fleet guard against a real etcd (Debian's `etcd-server`, started by
//! `support::etcd` on 127.0.0.1 ports of its own) and, for the fleet, several real anycastd
//! daemons each with its own fake FRR, journal and control socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::daemon::Daemon;
use support::etcd::Etcd;
use support::fake_frr::fake_vtysh;
use support::rng::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_etcd_drops_a_leased_key_when_its_lease_is_revoked() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd_client::Client::connect([etcd.url()], None)
        .await
        .unwrap();
    let lease = client.lease_grant(5, None).await.unwrap().id();
    client
        .put(
            "/t/key",
            "v",
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    assert_eq!(etcd.get_prefix("/t/"), vec![("/t/key".into(), "v".into())]);
    client.lease_revoke(lease).await.unwrap();
    assert!(etcd.get_prefix("/t/").is_empty());
    // Stopped and continued, it answers again.
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    assert!(!etcd.healthy());
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !etcd.healthy() {
        assert!(std::time::Instant::now() < deadline, "etcd did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One site of a test fleet: an anycastd with its own fake FRR (`DIR/frr.json`), journal and
/// control socket, and service dns (203.0.113.53) whose one check fails while `DIR/fail`
/// exists.
struct Site {
    name: String,
    dir: tempfile::TempDir,
    daemon: Option<Daemon>,
}

/// What varies between the sites' configs.
struct FleetSpec<'a> {
    etcd: String,
    /// The service's `fleet = {...}`.
    rule: &'a str,
    /// Lines added to `[fleet]`.
    fleet_extra: &'a str,
    /// Lines added to the check's table (`hard = true`).
    check_extra: &'a str,
    /// An unguarded service `web` (203.0.113.80) with the same check, when true.
    web: bool,
    /// A second check of dns, `core`, marked `hard = true`, failing while `DIR/hardfail`
    /// exists, when true.
    hard_check: bool,
    /// `[fleet] lease`.
    lease: &'a str,
}

impl Site {
    fn new(name: &str, spec: &FleetSpec) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let fail = dir.path().join("fail");
        let text = format!(
            r#"[journal]
path = {journal:?}
[control]
socket = {socket:?}
[frrouting]
vtysh_args = ["--state", {state:?}]
[fleet]
etcd = [{etcd:?}]
site = {name:?}
lease = {lease:?}
{fleet_extra}
[services.dns]
fleet = {rule}
prefixes.frrouting = [{{ prefix = "203.0.113.53", vtysh = {vtysh:?} }}]
checks.exec = [{{ command = "/bin/sh", args = ["-c", "test ! -e {fail}"], name = "alive", interval = "200ms", timeout = "5s"{check_extra} }}{hard}]
"#,
            hard = if spec.hard_check {
                format!(
                    r#", {{ command = "/bin/sh", args = ["-c", "test ! -e {}"], name = "core", interval = "200ms", timeout = "5s", hard = true }}"#,
                    dir.path().join("hardfail").display()
                )
            } else {
                String::new()
            },
            journal = dir.path().join("journal").display().to_string(),
            socket = dir.path().join("ctl.sock").display().to_string(),
            state = dir.path().join("frr.json").display().to_string(),
            etcd = spec.etcd,
            fleet_extra = spec.fleet_extra,
            lease = spec.lease,
            rule = spec.rule,
            vtysh = fake_vtysh().display().to_string(),
            fail = fail.display(),
            check_extra = spec.check_extra,
        );
        let text = if spec.web {
            format!(
                "{text}[services.web]\nprefixes.frrouting = [{{ prefix = \"203.0.113.80\", vtysh = {vtysh:?} }}]\nchecks.exec = [{{ command = \"/bin/sh\", args = [\"-c\", \"test ! -e {fail}\"], name = \"alive\", interval = \"200ms\", timeout = \"5s\" }}]\n",
                vtysh = fake_vtysh().display().to_string(),
                fail = fail.display(),
            )
        } else {
            text
        };
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        let mut site = Site {
            name: name.to_owned(),
            dir,
            daemon: None,
        };
        site.start();
        site
    }

    fn start(&mut self) {
        self.daemon = Some(Daemon::start(
            &self.dir.path().join("config.toml"),
            &self.dir.path().join("log"),
        ));
    }

    /// Stop (SIGTERM) and start again with `env` in the daemon's environment.
    fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.signal(nix::sys::signal::Signal::SIGTERM);
            daemon.wait(Duration::from_secs(20));
        }
        self.daemon = Some(Daemon::start_with_env(
            &self.config(),
            &self.dir.path().join("log"),
            env,
        ));
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Whether its FRR announces dns (the oracle: the fake FRR's state, not the daemon's
    /// words). A state file caught mid-write is read again.
    fn announces(&self) -> bool {
        self.announces_prefix("203.0.113.53/32")
    }

    /// Whether its FRR announces `prefix`.
    fn announces_prefix(&self, prefix: &str) -> bool {
        let path = self.dir.path().join("frr.json");
        for _ in 0..50 {
            let Ok(text) = std::fs::read_to_string(&path) else {
                return false;
            };
            if let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) {
                return state["networks"]["default"]
                    .as_array()
                    .is_some_and(|nets| nets.iter().any(|n| n == prefix));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("{} unreadable", path.display());
    }

    fn fail(&self, failing: bool) {
        let path = self.dir.path().join("fail");
        if failing {
            std::fs::write(path, "").unwrap();
        } else {
            let _ = std::fs::remove_file(path);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// `anycastd status` (text).
    fn status(&self) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["status", "-c"])
            .arg(self.config())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `anycastd ARGS -c CONFIG`: exit code and stdout.
    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(args)
            .arg("-c")
            .arg(self.config())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn history(&self) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["history", "dns", "-c"])
            .arg(self.config())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Sites announcing, by the oracle.
fn announcing(sites: &[Site]) -> usize {
    sites.iter().filter(|s| s.announces()).count()
}

/// Sample the sites' FRRs until `done` (checked between samples) or 60 s; the fewest
/// announcing seen.
fn watch_until(sites: &[Site], what: &str, mut done: impl FnMut(&[Site]) -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut fewest = usize::MAX;
    loop {
        fewest = fewest.min(announcing(sites));
        if done(sites) {
            return fewest;
        }
        assert!(
            Instant::now() < deadline,
            "not within 60 s: {what}; announcing: {:?}\n{}",
            sites.iter().map(|s| s.announces()).collect::<Vec<_>>(),
            sites
                .iter()
                .map(|s| format!("--- {}\n{}", s.name, s.log()))
                .collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Keep sampling for `period`; the fewest announcing seen.
fn watch_for(sites: &[Site], period: Duration) -> usize {
    let end = Instant::now() + period;
    let mut fewest = usize::MAX;
    while Instant::now() < end {
        fewest = fewest.min(announcing(sites));
        std::thread::sleep(Duration::from_millis(10));
    }
    fewest
}

/// `n` sites, once every one announces (and, with `etcd`, is published announcing).
fn fleet_of(n: usize, spec: &FleetSpec, etcd: Option<&Etcd>) -> Vec<Site> {
    let sites: Vec<Site> = (1..=n)
        .map(|i| Site::new(&format!("site{i}"), spec))
        .collect();
    watch_until(&sites, "every site announces", |s| announcing(s) == n);
    if let Some(etcd) = etcd {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let keys = etcd.get_prefix("/anycastd/dns/sites/");
            if keys.len() == n && keys.iter().all(|(_, v)| v.contains("\"announcing\"")) {
                break;
            }
            assert!(Instant::now() < until, "not published announcing: {keys:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    sites
}

fn spec(etcd: &Etcd) -> FleetSpec<'static> {
    FleetSpec {
        etcd: etcd.url(),
        rule: "{ min_announcing = 3 }",
        fleet_extra: "",
        check_extra: "",
        web: false,
        hard_check: false,
        lease: "2s",
    }
}

#[test]
fn a_guarded_deprefer_service_is_never_withdrawn_and_publishes_de_preferred() {
    let Some(etcd) = Etcd::start() else { return };
    // min_announcing 1: the guard would grant two of three withdrawals, were any asked.
    let spec = FleetSpec {
        rule: "{ min_announcing = 1 }\non_unhealthy = \"deprefer\"\ndeprefer = { med = 1000 }",
        ..spec(&etcd)
    };
    let sites = fleet_of(3, &spec, Some(&etcd));
    for site in &sites {
        site.fail(true);
    }
    // Every site publishes de-preferred, and every FRR keeps the prefix throughout.
    let until = Instant::now() + Duration::from_secs(30);
    let mut fewest = usize::MAX;
    loop {
        fewest = fewest.min(announcing(&sites));
        let keys = etcd.get_prefix("/anycastd/dns/sites/");
        if keys.len() == 3 && keys.iter().all(|(_, v)| v.contains("\"de-preferred\"")) {
            break;
        }
        assert!(
            Instant::now() < until,
            "not published de-preferred: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fewest = fewest.min(watch_for(&sites, Duration::from_secs(3)));
    assert_eq!(fewest, 3, "a de-preferred service was withdrawn");
    // Still de-preferred once every FRR has confirmed the de-preferred announcement (which
    // published "announcing" over it before).
    let keys = etcd.get_prefix("/anycastd/dns/sites/");
    assert!(
        keys.len() == 3 && keys.iter().all(|(_, v)| v.contains("\"de-preferred\"")),
        "{keys:?}"
    );
    for site in &sites {
        let history = site.history();
        assert!(!history.contains("fleet guard"), "{}: {history}", site.name);
    }
}

#[test]
fn a_reload_from_deprefer_to_withdraw_asks_the_guard_granted_then_held_at_the_minimum() {
    let Some(etcd) = Etcd::start() else { return };
    // Three sites, two must announce; de-preferred sites count as announcing.
    let spec = FleetSpec {
        rule: "{ min_announcing = 2 }\non_unhealthy = \"deprefer\"\ndeprefer = { med = 1000 }",
        ..spec(&etcd)
    };
    let sites = fleet_of(3, &spec, Some(&etcd));
    for site in &sites {
        site.fail(true);
    }
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let keys = etcd.get_prefix("/anycastd/dns/sites/");
        if keys.len() == 3 && keys.iter().all(|(_, v)| v.contains("\"de-preferred\"")) {
            break;
        }
        assert!(Instant::now() < until, "not de-preferred: {keys:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A site reloaded to withdraw when unhealthy: the withdrawal is the guard's to grant.
    let reload_to_withdraw = |site: &Site| {
        let config = site.config();
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace("on_unhealthy = \"deprefer\"\n", "")).unwrap();
        let (code, answer) = site.run(&["reload"]);
        assert_eq!(code, Some(0), "{answer}");
        assert!(
            answer.contains("asks the fleet guard to withdraw"),
            "{answer}"
        );
    };
    // site1: two of three still announce without it, granted and withdrawn.
    reload_to_withdraw(&sites[0]);
    let fewest = watch_until(&sites, "site1 withdrawn", |s| !s[0].announces());
    assert_eq!(fewest, 2, "{}", sites[0].history());
    let history = sites[0].history();
    assert!(
        history.contains("withdrawal granted by the fleet guard"),
        "{history}"
    );
    // site2: withdrawing it would leave one, held; it stays announced.
    reload_to_withdraw(&sites[1]);
    let fewest = watch_for(&sites, Duration::from_secs(3));
    assert_eq!(
        fewest,
        2,
        "the reload withdrew past the guard: {}\n{:?}",
        sites[1].history(),
        etcd.get_prefix("/anycastd/dns/sites/")
    );
    assert!(sites[1].announces() && sites[2].announces());
    let history = sites[1].history();
    assert!(
        history.contains("withdrawal held by the fleet guard"),
        "{history}"
    );
    // Held as it is installed, de-preferred: no drift, a warning (not a critical) to a monitor.
    let status = sites[1].status();
    assert!(!status.contains("DRIFT"), "{status}");
    let (code, line) = sites[1].run(&["status", "--check"]);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("dns: announced de-preferred"), "{line}");
    let report: serde_json::Value =
        serde_json::from_str(&sites[1].run(&["report", "--json"]).1).unwrap();
    let summary = &report["rows"][0]["summary"];
    assert_eq!(summary["outages"], 0, "held is no outage: {report}");
    assert_eq!(summary["withdrawn_ms"], 0, "{report}");
    assert!(summary["held_ms"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn a_reload_loosening_a_held_services_rule_asks_the_guard_again_under_it() {
    let Some(etcd) = Etcd::start() else { return };
    // Two sites, both must announce: both failing, both held.
    let spec = FleetSpec {
        rule: "{ min_announcing = 2 }",
        ..spec(&etcd)
    };
    let sites = fleet_of(2, &spec, Some(&etcd));
    for site in &sites {
        site.fail(true);
    }
    let until = Instant::now() + Duration::from_secs(30);
    while !sites
        .iter()
        .all(|s| s.history().contains("withdrawal held by the fleet guard"))
    {
        assert!(Instant::now() < until, "not held: {}", sites[0].history());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(announcing(&sites), 2);
    // The log says the withdrawal is asked, not made.
    let log = sites[0].log();
    assert!(
        log.contains("is now considered unhealthy, asking the fleet guard before denouncing related prefixes")
            && !log.contains("is now considered unhealthy, denouncing"),
        "{log}"
    );
    // site1 may go now that one site is enough: asked again at the reload, granted.
    let config = sites[0].config();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("min_announcing = 2", "min_announcing = 1"),
    )
    .unwrap();
    let (code, answer) = sites[0].run(&["reload"]);
    assert_eq!(code, Some(0), "{answer}");
    assert!(answer.contains("asks the fleet guard again"), "{answer}");
    let fewest = watch_until(&sites, "site1 withdrawn under the new rule", |s| {
        !s[0].announces()
    });
    assert_eq!(fewest, 1);
    assert!(
        sites[1].announces(),
        "site2 is still held under its own rule"
    );
    let history = sites[0].history();
    assert!(
        history.contains("withdrawal granted by the fleet guard"),
        "{history}"
    );
}

#[test]
fn five_sites_failing_at_once_leave_three_announcing_and_recover_one_by_one() {
    let Some(etcd) = Etcd::start() else { return };
    let sites = fleet_of(5, &spec(&etcd), Some(&etcd));
    // Every site is published announcing, under its lease.
    let keys = etcd.get_prefix("/anycastd/dns/sites/");
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(
        keys.iter().all(|(_, v)| v.contains("\"announcing\"")),
        "{keys:?}"
    );

    for site in &sites {
        site.fail(true);
    }
    // Exactly two withdraw; three hold, and keep holding.
    let fewest = watch_until(&sites, "two sites withdrawn", |s| announcing(s) == 3);
    assert!(fewest >= 3, "{fewest} announcing at one moment");
    assert_eq!(watch_for(&sites, Duration::from_secs(2)), 3);
    let held: Vec<&Site> = sites.iter().filter(|s| s.announces()).collect();
    // The count is the fleet without the asking site, in the journal, status and log alike.
    let words = "withdrawal held by the fleet guard: withdrawing here would leave 2 of 5 sites announcing dns, minimum 3";
    for site in &held {
        let history = site.history();
        assert!(history.contains(words), "{}: {history}", site.name);
        let status = site.status();
        assert!(status.contains(words), "{}: {status}", site.name);
        assert!(site.log().contains(words), "{}: {}", site.name, site.log());
    }
    let withdrawn: Vec<&Site> = sites.iter().filter(|s| !s.announces()).collect();
    for site in &withdrawn {
        assert!(
            site.history()
                .contains("withdrawal granted by the fleet guard"),
            "{}",
            site.name
        );
    }
    let keys = etcd.get_prefix("/anycastd/dns/sites/");
    assert_eq!(
        keys.iter().filter(|(_, v)| v.contains("\"held\"")).count(),
        3,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|(_, v)| v.contains("\"withdrawn\""))
            .count(),
        2,
        "{keys:?}"
    );
    // Settled, the fleet writes nothing: a held site does not write its unchanged record
    // again when another held site asks (which was a write at every other site, for ever).
    let revision = etcd.revision();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        etcd.revision(),
        revision,
        "{:?}",
        etcd.get_prefix("/anycastd/")
    );

    // Recover one by one: a withdrawn site that comes back lets a held one go; never fewer
    // than three announce; at the end all five do.
    let mut fewest = usize::MAX;
    for site in &sites {
        site.fail(false);
        fewest = fewest.min(watch_for(&sites, Duration::from_millis(1500)));
    }
    fewest = fewest.min(watch_until(&sites, "all five announce", |s| {
        announcing(s) == 5
    }));
    assert!(fewest >= 3, "{fewest} announcing at one moment");
}

#[test]
fn failures_at_random_moments_never_leave_fewer_than_the_minimum_announcing() {
    let Some(etcd) = Etcd::start() else { return };
    let sites = fleet_of(5, &spec(&etcd), Some(&etcd));
    let seed = 0x5eed_f1ee7;
    let mut rng = Rng(seed);
    let mut fewest = usize::MAX;
    for round in 0..10 {
        // Each site fails at a random moment within 600 ms, some recover at random moments.
        let mut order: Vec<usize> = (0..sites.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &i in &order {
            sites[i].fail(true);
            let pause = Duration::from_millis(rng.below(150));
            fewest = fewest.min(watch_for(&sites, pause));
            if rng.chance(20) {
                sites[rng.below(5) as usize].fail(false);
            }
        }
        for site in &sites {
            site.fail(true);
        }
        fewest = fewest.min(watch_until(&sites, "settled at three", |s| {
            announcing(s) == 3
        }));
        assert!(
            fewest >= 3,
            "seed {seed:#x} round {round}: {fewest} announcing at one moment"
        );
        for &i in &order {
            sites[i].fail(false);
            fewest = fewest.min(watch_for(&sites, Duration::from_millis(rng.below(100))));
        }
        fewest = fewest.min(watch_until(&sites, "all announce again", |s| {
            announcing(s) == 5
        }));
        assert!(
            fewest >= 3,
            "seed {seed:#x} round {round}: {fewest} announcing at one moment"
        );
    }
}

#[test]
fn with_etcd_stopped_hold_keeps_a_failing_site_announced_until_etcd_answers_again() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let sites = fleet_of(5, &spec(&etcd), Some(&etcd));
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    sites[0].fail(true);
    sites[1].fail(true);
    // Blind: nothing can be counted, "hold" keeps both announced.
    let until = Instant::now() + Duration::from_secs(30);
    while !sites[0]
        .history()
        .contains("the fleet guard is blind since")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(watch_for(&sites, Duration::from_secs(2)), 5);
    assert!(sites[0]
        .history()
        .contains("withdrawal held (on_unreachable = \"hold\")"));
    // etcd answers again: both are asked again, and three others announce: both go.
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
    let fewest = watch_until(&sites, "two withdrawn", |s| announcing(s) == 3);
    assert!(fewest >= 3);
    assert!(!sites[0].announces() && !sites[1].announces());

    // SIGKILLed and restarted on its data: a third failing site is counted again.
    sites[0].fail(false);
    watch_until(&sites, "site1 back", |s| s[0].announces());
    etcd.kill();
    sites[2].fail(true);
    assert_eq!(watch_for(&sites, Duration::from_secs(2)), 4, "blind: held");
    etcd.restart();
    // Four announce (site2 held among them), one other is withdrawn: site3 may go.
    let fewest = watch_until(&sites, "site3 withdrawn", |s| !s[2].announces());
    assert!(fewest >= 3);
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 3);
}

#[test]
fn with_etcd_unreachable_local_withdraws_as_without_a_guard() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        fleet_extra: "on_unreachable = \"local\"",
        ..spec(&etcd)
    };
    let sites = fleet_of(3, &spec, Some(&etcd));
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    for site in &sites {
        site.fail(true);
    }
    watch_until(&sites, "all withdrawn locally", |s| announcing(s) == 0);
    assert!(sites[0]
        .history()
        .contains("withdrawal decided locally (on_unreachable = \"local\")"));
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
}

#[test]
fn a_killed_site_is_gone_from_the_count_once_its_lease_lapses() {
    let Some(etcd) = Etcd::start() else { return };
    let mut sites = fleet_of(5, &spec(&etcd), Some(&etcd));
    // SIGKILL: no drain, its fake FRR keeps the prefix, but its lease (2 s) lapses.
    let mut killed = sites.pop().unwrap();
    killed
        .daemon
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGKILL);
    let until = Instant::now() + Duration::from_secs(20);
    while etcd.get_prefix("/anycastd/dns/sites/").len() != 4 {
        assert!(Instant::now() < until, "the killed site's key stays");
        std::thread::sleep(Duration::from_millis(100));
    }
    killed.daemon = None;
    for site in &sites {
        site.fail(true);
    }
    // Four live sites, minimum 3: one withdraws, three hold.
    watch_until(&sites, "one withdrawn", |s| announcing(s) == 3);
    assert_eq!(watch_for(&sites, Duration::from_secs(2)), 3);
    assert!(sites
        .iter()
        .filter(|s| s.announces())
        .all(|s| s.history().contains("withdrawal held by the fleet guard: withdrawing here would leave 2 of 4 sites announcing dns, minimum 3")));
}

#[test]
fn a_hard_check_withdraws_whatever_the_fleet_says() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        check_extra: ", hard = true",
        ..spec(&etcd)
    };
    let sites = fleet_of(3, &spec, Some(&etcd));
    for site in &sites {
        site.fail(true);
    }
    watch_until(&sites, "all withdrawn", |s| announcing(s) == 0);
    assert!(!sites[0].history().contains("fleet guard"));
    // Withdrawn is published all the same.
    let keys = etcd.get_prefix("/anycastd/dns/sites/");
    assert_eq!(
        keys.iter()
            .filter(|(_, v)| v.contains("\"withdrawn\""))
            .count(),
        3,
        "{keys:?}"
    );
}

#[test]
fn unreachable_endpoints_at_start_start_the_daemon_blind_and_it_says_so() {
    let dead = format!("http://127.0.0.1:{}", support::servers::free_port());
    let spec = FleetSpec {
        etcd: dead,
        rule: "{ min_announcing = 3 }",
        fleet_extra: "",
        check_extra: "",
        web: false,
        hard_check: false,
        lease: "2s",
    };
    let sites = fleet_of(1, &spec, None);
    let until = Instant::now() + Duration::from_secs(20);
    while !sites[0].log().contains("The fleet guard is blind") {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Blind and "hold": a failure keeps it announced.
    sites[0].fail(true);
    assert_eq!(watch_for(&sites, Duration::from_secs(2)), 1);
    // Why, in an operator's words (not gRPC's debug text), in status and in the journal,
    // which names the endpoint.
    let status = sites[0].status();
    assert!(
        status.contains(": connection refused); guarded withdrawals are held"),
        "{status}"
    );
    let until = Instant::now() + Duration::from_secs(20);
    let blind = format!("(etcd at {}: ", spec.etcd);
    while !sites[0].history().contains(&blind) {
        assert!(Instant::now() < until, "{}", sites[0].history());
        std::thread::sleep(Duration::from_millis(100));
    }
    let history = sites[0].history();
    let line = history
        .lines()
        .find(|l| l.contains("the fleet guard is blind since"))
        .unwrap_or_default();
    assert!(
        line.contains(&blind) && line.contains(": connection refused): withdrawal held"),
        "{history}"
    );
    // The daemon's own lines (the debug level shows tonic's own debug text too).
    let log: String = sites[0]
        .log()
        .lines()
        .filter(|l| l.contains("fleet guard"))
        .collect();
    for text in [&status, &history, &log] {
        for debug in ["MetadataMap", "status: ", "Status {", "ConnectError"] {
            assert!(!text.contains(debug), "{debug:?} in: {text}");
        }
    }

    // A reload that changes [fleet] (here to "local", which would withdraw) is rejected: the
    // running guard keeps its settings until a restart, so nothing may pretend otherwise.
    let config = sites[0].config();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "lease = \"2s\"\n",
            "lease = \"2s\"\non_unreachable = \"local\"\n",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["reload", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{said}");
    assert!(said.contains("[fleet] changed; restart required"), "{said}");
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 1);
}

#[test]
fn a_minimum_larger_than_the_fleet_warns_and_holds() {
    let Some(etcd) = Etcd::start() else { return };
    let sites = fleet_of(2, &spec(&etcd), Some(&etcd));
    sites[0].fail(true);
    let until = Instant::now() + Duration::from_secs(20);
    while !sites[0]
        .log()
        .contains("fewer than the 3 that must keep announcing it")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 2);
    assert!(sites[0]
        .history()
        .contains("withdrawal held by the fleet guard: withdrawing here would leave 1 of 2 sites announcing dns, minimum 3"));
}

#[test]
fn the_fleet_command_shows_every_sites_state_from_the_config_or_from_etcd_alone() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        rule: "{ min_announcing = 1 }",
        ..spec(&etcd)
    };
    let sites = fleet_of(2, &spec, Some(&etcd));
    sites[1].fail(true);
    watch_until(&sites, "site2 withdrawn", |s| !s[1].announces());
    let fleet = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .arg("fleet")
            .args(args)
            .output()
            .unwrap()
    };
    let config = sites[0].config();
    let out = fleet(&["-c", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("dns: 1 of 2 sites announce\n"), "{text}");
    assert!(text.contains("site1  announcing"), "{text}");
    assert!(text.contains("site2  withdrawn"), "{text}");
    // From a host without the config: --etcd alone.
    let url = etcd.url();
    let out = fleet(&["-c", "/nonexistent", "--etcd", &url, "--json", "dns"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["site"], "site2");
    assert_eq!(lines[1]["state"], "withdrawn");
    // etcd that cannot be read: exit 69, saying so.
    let dead = format!("http://127.0.0.1:{}", support::servers::free_port());
    let out = fleet(&["-c", "/nonexistent", "--etcd", &dead]);
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be read"));
    // Neither a [fleet] table nor --etcd: a usage error.
    let out = fleet(&["-c", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(66), "the config cannot be read");
}

#[test]
fn with_the_readmes_roles_a_site_writes_its_own_key_and_no_other() {
    let Some(etcd) = Etcd::start() else { return };
    // The README's setup, with a root user to turn authentication on.
    let root = "root:rootpw";
    etcd.ctl(&["user", "add", root]);
    etcd.ctl(&["auth", "enable"]);
    let dir = tempfile::tempdir().unwrap();
    let mut users = Vec::new();
    for site in ["site1", "site2", "site3"] {
        let as_root = |args: &[&str]| {
            let (ok, out) = etcd.ctl_as(root, args);
            assert!(ok, "{args:?}: {out}");
        };
        as_root(&["role", "add", site]);
        as_root(&[
            "role",
            "grant-permission",
            site,
            "read",
            "--prefix=true",
            "/anycastd/",
        ]);
        let own = format!("/anycastd/dns/sites/{site}");
        as_root(&["role", "grant-permission", site, "readwrite", &own]);
        let password = format!("{site}-pw");
        as_root(&["user", "add", &format!("{site}:{password}")]);
        as_root(&["user", "grant-role", site, site]);
        let file = dir.path().join(site);
        std::fs::write(&file, format!("{password}\n")).unwrap();
        users.push(format!(
            "user = {site:?}\npassword_file = {:?}",
            file.display().to_string()
        ));
    }
    let sites: Vec<Site> = users
        .iter()
        .enumerate()
        .map(|(i, extra)| {
            let spec = FleetSpec {
                rule: "{ min_announcing = 2 }",
                fleet_extra: extra,
                ..spec(&etcd)
            };
            Site::new(&format!("site{}", i + 1), &spec)
        })
        .collect();
    watch_until(&sites, "every site announces", |s| announcing(s) == 3);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out) = etcd.ctl_as(root, &["get", "--prefix", "/anycastd/dns/sites/"]);
        if out.matches("\"announcing\"").count() == 3 {
            break;
        }
        assert!(Instant::now() < until, "{out}\n{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The guard works under the roles: all three fail, one may go (minimum 2).
    for site in &sites {
        site.fail(true);
    }
    watch_until(&sites, "one withdrawn", |s| announcing(s) == 2);
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 2);
    // A site's user cannot write another site's key.
    let (ok, out) = etcd.ctl_as(
        "site1:site1-pw",
        &["put", "/anycastd/dns/sites/site2", "{}"],
    );
    assert!(!ok && out.contains("permission denied"), "{out}");
    // A wrong password: the guard is blind, and says why in an operator's words.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let extra = format!(
        "user = \"site1\"\npassword_file = {:?}",
        wrong.display().to_string()
    );
    let wrong_password = FleetSpec {
        rule: "{ min_announcing = 2 }",
        fleet_extra: &extra,
        ..spec(&etcd)
    };
    let denied = Site::new("site4", &wrong_password);
    let until = Instant::now() + Duration::from_secs(20);
    while !denied.status().contains(
        "authentication failed: invalid user ID or password); guarded withdrawals are held",
    ) {
        assert!(
            Instant::now() < until,
            "{}\n{}",
            denied.status(),
            denied.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // site1's user publishing as another site: refused by etcd's roles, said so.
    let as_site1 = FleetSpec {
        rule: "{ min_announcing = 2 }",
        fleet_extra: &users[0],
        ..spec(&etcd)
    };
    let intruder = Site::new("site5", &as_site1);
    let until = Instant::now() + Duration::from_secs(20);
    while !intruder
        .status()
        .contains(": permission denied); guarded withdrawals are held")
    {
        assert!(
            Instant::now() < until,
            "{}\n{}",
            intruder.status(),
            intruder.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stopped_etcd_holds_the_guarded_service_but_not_an_unguarded_one() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        web: true,
        ..spec(&etcd)
    };
    let sites = fleet_of(3, &spec, Some(&etcd));
    watch_until(&sites, "web announced", |s| {
        s.iter().all(|s| s.announces_prefix("203.0.113.80/32"))
    });
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    sites[0].fail(true);
    // web is not guarded: it goes as without a fleet guard, etcd or not.
    watch_until(&sites, "web withdrawn at site1", |s| {
        !s[0].announces_prefix("203.0.113.80/32")
    });
    let until = Instant::now() + Duration::from_secs(30);
    while !sites[0]
        .history()
        .contains("the fleet guard is blind since")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sites[0].announces(), "dns is held while etcd is stopped");
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
}

/// The fleet's announcing sites sampled until `site` is restarted and has asked the guard
/// again: the fewest announcing, and whether `site` announced at every sample.
fn restart_sampling(sites: &mut [Site], index: usize) -> (usize, bool) {
    let mut fewest = usize::MAX;
    let mut always = true;
    let mut sample = |sites: &[Site]| {
        fewest = fewest.min(announcing(sites));
        always &= sites[index].announces();
    };
    // SIGKILL: no stop, nothing withdrawn by the daemon; its fake FRR keeps the prefix.
    let mut daemon = sites[index].daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGKILL);
    daemon.wait(Duration::from_secs(10));
    sample(sites);
    sites[index].start();
    let until = Instant::now() + Duration::from_secs(30);
    while !sites[index].log().contains("the guard is asked again") {
        sample(sites);
        assert!(Instant::now() < until, "{}", sites[index].log());
        std::thread::sleep(Duration::from_millis(5));
    }
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        sample(sites);
        std::thread::sleep(Duration::from_millis(10));
    }
    (fewest, always)
}

#[test]
fn a_site_restarted_while_its_withdrawal_is_held_keeps_announcing_and_asks_the_guard_again() {
    let Some(etcd) = Etcd::start() else { return };
    let mut sites = fleet_of(5, &spec(&etcd), Some(&etcd));
    for site in &sites {
        site.fail(true);
    }
    watch_until(&sites, "two sites withdrawn", |s| announcing(s) == 3);
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 3);
    let held: Vec<usize> = (0..5).filter(|&i| sites[i].announces()).collect();
    let restarted = held[0];

    // Crash + restart while held: the route never leaves its FRR, the fleet never drops
    // below three, and the guard, asked again, holds it again.
    let (fewest, always) = restart_sampling(&mut sites, restarted);
    assert!(
        always,
        "the held route left FRR across the restart:\n{}",
        sites[restarted].log()
    );
    assert!(fewest >= 3, "{fewest} announcing at one moment");
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 3);
    let history = sites[restarted].history();
    assert!(
        !history.contains("not announced at the last stop"),
        "{history}"
    );
    let after_restart = history
        .rsplit_once("restored after a restart")
        .or_else(|| history.rsplit_once("daemon started"))
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default();
    assert!(
        after_restart
            .contains("withdrawal held by the fleet guard: withdrawing here would leave 2 of 5 sites announcing dns, minimum 3"),
        "held again after the restart: {history}"
    );
    let keys = etcd.get_prefix("/anycastd/dns/sites/");
    let own = format!("/anycastd/dns/sites/{}", sites[restarted].name);
    assert!(
        keys.iter()
            .any(|(k, v)| *k == own && v.contains("\"held\"")),
        "{keys:?}"
    );

    // A second crash + restart, then the others recover: the guard grants it, and only then
    // is it withdrawn.
    let (fewest, always) = restart_sampling(&mut sites, restarted);
    assert!(always && fewest >= 3, "{fewest}");
    for (i, site) in sites.iter().enumerate() {
        if i != restarted {
            site.fail(false);
        }
    }
    watch_until(&sites, "the restarted site withdrawn, four announce", |s| {
        !s[restarted].announces() && announcing(s) == 4
    });
    assert!(
        sites[restarted]
            .history()
            .contains("withdrawal granted by the fleet guard"),
        "{}",
        sites[restarted].history()
    );
}

#[test]
fn a_hard_check_failing_after_a_hold_withdraws_at_once() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        hard_check: true,
        ..spec(&etcd)
    };
    // Three sites, minimum 3: no withdrawal by a soft check can be granted.
    let sites = fleet_of(3, &spec, Some(&etcd));
    sites[0].fail(true);
    let until = Instant::now() + Duration::from_secs(30);
    while !sites[0]
        .history()
        .contains("withdrawal held by the fleet guard: withdrawing here would leave 2 of 3 sites announcing dns, minimum 3")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sites[0].announces(), "held");
    // The hard check fails too: withdrawn at once, whatever the fleet says.
    std::fs::write(sites[0].dir.path().join("hardfail"), "").unwrap();
    watch_until(&sites, "site1 withdrawn by its hard check", |s| {
        !s[0].announces()
    });
    let history = sites[0].history();
    assert!(
        history.contains(
            "withdrawal made at once, no longer held by the fleet guard: hard check \"core\" failed"
        ),
        "{history}"
    );
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let keys = etcd.get_prefix("/anycastd/dns/sites/site1");
        if keys.iter().any(|(_, v)| v.contains("\"withdrawn\"")) {
            break;
        }
        assert!(Instant::now() < until, "{keys:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_drain_that_takes_the_fleet_below_its_minimum_is_refused_unless_forced() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        rule: "{ min_announcing = 2 }",
        ..spec(&etcd)
    };
    let sites = fleet_of(3, &spec, Some(&etcd));
    let drain = |site: &Site, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["drain", "dns", "--reason", "maintenance", "-c"])
            .arg(site.config())
            .args(extra)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), said)
    };
    // Three announce, minimum 2: one may be drained (nothing forced: no trace of the guard).
    let (code, said) = drain(&sites[0], &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("forced"), "{said}");
    watch_until(&sites, "site1 drained", |s| !s[0].announces());
    let until = Instant::now() + Duration::from_secs(10);
    while !etcd
        .get_prefix("/anycastd/dns/sites/site1")
        .iter()
        .any(|(_, v)| v.contains("\"drained\""))
    {
        assert!(Instant::now() < until, "site1 not published drained");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second would leave one: refused, naming the count and the minimum, nothing drained.
    let (code, said) = drain(&sites[1], &[]);
    assert_eq!(code, Some(75), "{said}");
    assert!(
        said.contains("refused: draining dns would take its fleet below its minimum: 2 of 3 sites announce dns now (minimum 2), 1 would after the drain; use --force to drain anyway"),
        "{said}"
    );
    assert_eq!(watch_for(&sites, Duration::from_secs(1)), 2);
    // etcd cannot be read: nobody can tell, refused too.
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    let (code, said) = drain(&sites[1], &[]);
    assert_eq!(code, Some(75), "{said}");
    assert!(
        said.contains("refused: cannot tell whether draining dns takes its fleet below its minimum (minimum 2): etcd at"),
        "{said}"
    );
    assert!(sites[1].announces());
    // --force drains all the same, and says it was forced past the guard, which could not
    // count the fleet: in its answer and in the journal, with who and why.
    let (code, said) = drain(&sites[1], &["--force"]);
    etcd.signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(code, Some(0), "{said}");
    let unread = format!(
        "forced past the fleet guard: the fleet of dns could not be counted (etcd at {} cannot be read: ",
        etcd.url()
    );
    assert!(said.contains(&format!("dns: drained; {unread}")), "{said}");
    watch_until(&sites, "site2 drained", |s| !s[1].announces());
    let history = sites[1].history();
    assert!(
        history
            .contains("operator: drain dns (maintenance) forced past the fleet guard (uid 0, pid ")
            && history.contains(&unread["forced past the fleet guard: ".len()..]),
        "{history}"
    );
    // Once site2 is published drained, a forced drain of site3 counts what it leaves.
    let until = Instant::now() + Duration::from_secs(10);
    while !etcd
        .get_prefix("/anycastd/dns/sites/site2")
        .iter()
        .any(|(_, v)| v.contains("\"drained\""))
    {
        assert!(Instant::now() < until, "site2 not published drained");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, said) = drain(&sites[2], &["--force"]);
    assert_eq!(code, Some(0), "{said}");
    let counted =
        "forced past the fleet guard: draining here leaves 0 of 3 sites announcing dns, minimum 2";
    assert!(said.contains(&format!("dns: drained; {counted}")), "{said}");
    let history = sites[2].history();
    assert!(
        history
            .contains("operator: drain dns (maintenance) forced past the fleet guard (uid 0, pid ")
            && history.contains("): draining here leaves 0 of 3 sites announcing dns, minimum 2"),
        "{history}"
    );
    assert!(sites[2].log().contains(counted), "{}", sites[2].log());
    // A drain that was not forced says nothing of the guard in the journal.
    assert!(
        !sites[0].history().contains("forced past"),
        "{}",
        sites[0].history()
    );
}

#[test]
fn the_fleet_command_refuses_an_unknown_service_and_an_endpoint_without_a_scheme() {
    let Some(etcd) = Etcd::start() else { return };
    let spec = FleetSpec {
        rule: "{ min_announcing = 1 }",
        ..spec(&etcd)
    };
    let sites = fleet_of(1, &spec, Some(&etcd));
    let fleet = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .arg("fleet")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let config = sites[0].config();
    let (code, said) = fleet(&["-c", config.to_str().unwrap(), "nosuch"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("unknown service \"nosuch\": no site publishes it under /anycastd in etcd, and the config guards no service of that name; services in etcd: dns"),
        "{said}"
    );
    let (code, said) = fleet(&["-c", config.to_str().unwrap(), "dns"]);
    assert_eq!(code, Some(0), "{said}");
    // The config's rule for endpoints: a URL with a scheme.
    let bare = etcd.url().replace("http://", "");
    let (code, said) = fleet(&["-c", "/nonexistent", "--etcd", &bare]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "--etcd: {bare:?} is not a URL like \"https://10.0.0.1:2379\""
        )),
        "{said}"
    );
}

/// A scrape of `addr`, whole.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The samples of metric `name` in a scrape of `addr`: (series, value).
fn gauge(addr: &str, name: &str) -> Vec<(String, f64)> {
    samples(&scrape(addr), name)
}

/// The samples of metric `name` in `text`.
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_blind_gauge_reads_1_at_a_blind_start_and_a_removed_fleet_rule_takes_its_gauges_away() {
    // Blind from the start: 1, not absent.
    let listen = format!("127.0.0.1:{}", support::servers::free_port());
    let metrics = format!("\n[metrics]\nlisten = {listen:?}\n");
    let dead = format!("http://127.0.0.1:{}", support::servers::free_port());
    let blind_spec = FleetSpec {
        etcd: dead,
        rule: "{ min_announcing = 1 }",
        fleet_extra: &metrics,
        check_extra: "",
        web: false,
        hard_check: false,
        lease: "2s",
    };
    let site = Site::new("site1", &blind_spec);
    // From the first scrape that answers (start-up reads FRR first, the guard starts after).
    let until = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < until, "{}", site.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = scrape(&listen);
    assert_eq!(
        samples(&text, "anycastd_fleet_guard_blind"),
        [("anycastd_fleet_guard_blind".to_owned(), 1.0)],
        "{text}"
    );
    drop(site);

    // A service whose fleet rule a reload removes: its fleet gauges go.
    let Some(etcd) = Etcd::start() else { return };
    let listen = format!("127.0.0.1:{}", support::servers::free_port());
    let metrics = format!("\n[metrics]\nlisten = {listen:?}\n");
    let guarded = FleetSpec {
        rule: "{ min_announcing = 1 }",
        fleet_extra: &metrics,
        ..spec(&etcd)
    };
    let sites = fleet_of(1, &guarded, Some(&etcd));
    let until = Instant::now() + Duration::from_secs(10);
    while gauge(&listen, "anycastd_fleet_sites").is_empty() {
        assert!(Instant::now() < until, "no fleet gauges");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Connected: 0 (polled: a scrape under load may come back short).
    let until = Instant::now() + Duration::from_secs(10);
    while gauge(&listen, "anycastd_fleet_guard_blind")
        != [("anycastd_fleet_guard_blind".to_owned(), 0.0)]
    {
        assert!(Instant::now() < until, "{}", scrape(&listen));
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = sites[0].config();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("fleet = { min_announcing = 1 }\n", ""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["reload", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::thread::sleep(Duration::from_millis(500));
    let sites_gauge = gauge(&listen, "anycastd_fleet_sites");
    assert!(
        sites_gauge
            .iter()
            .all(|(s, _)| !s.contains("service=\"dns\"")),
        "{sites_gauge:?}"
    );
    let held = gauge(&listen, "anycastd_fleet_guard_held");
    assert!(
        held.iter().all(|(s, _)| !s.contains("service=\"dns\"")),
        "{held:?}"
    );
}

#[test]
fn status_and_the_start_log_say_whether_the_fleet_guard_is_on_and_whether_it_sees() {
    let Some(etcd) = Etcd::start() else { return };
    let mut sites = fleet_of(1, &spec(&etcd), Some(&etcd));
    let status = |site: &Site| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["status", "-c"])
            .arg(site.config())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json = |site: &Site| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["status", "--json", "-c"])
            .arg(site.config())
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let on = format!("fleet guard: on, site site1, etcd {}: ", etcd.url());
    assert!(sites[0].log().contains(&on), "{}", sites[0].log());
    let until = Instant::now() + Duration::from_secs(10);
    while !status(&sites[0]).contains(&format!("{on}etcd reachable")) {
        assert!(Instant::now() < until, "{}", status(&sites[0]));
        std::thread::sleep(Duration::from_millis(100));
    }
    // --json: the line, and the same as fields.
    let value = json(&sites[0]);
    assert!(
        value["fleet_guard"]
            .as_str()
            .is_some_and(|l| l.ends_with("etcd reachable")),
        "{value}"
    );
    let fields = &value["fleet_guard_state"];
    assert_eq!(fields["on"], true, "{value}");
    assert_eq!(fields["site"], "site1", "{value}");
    assert_eq!(
        fields["endpoints"],
        serde_json::json!([etcd.url()]),
        "{value}"
    );
    assert_eq!(fields["state"], "connected", "{value}");
    assert!(
        fields["since_ms"].as_i64().is_some_and(|t| t > 0),
        "{value}"
    );
    assert!(fields["reason"].is_null(), "{value}");
    assert_eq!(fields["on_unreachable"], "hold", "{value}");
    // etcd stops answering: blind since when, why, and what that means.
    etcd.signal(nix::sys::signal::Signal::SIGSTOP);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = status(&sites[0]);
        if text.contains(&format!("{on}BLIND since "))
            && text.contains("guarded withdrawals are held (on_unreachable = \"hold\")")
        {
            break;
        }
        assert!(Instant::now() < until, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let value = json(&sites[0]);
    let fields = &value["fleet_guard_state"];
    assert_eq!(fields["state"], "blind", "{value}");
    let reason = fields["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("deadline exceeded")
            && !reason.contains('\n')
            && !reason.contains("Status"),
        "{value}"
    );
    assert!(
        value["fleet_guard"]
            .as_str()
            .is_some_and(|l| l.contains(&format!("({reason})"))),
        "{value}"
    );
    etcd.signal(nix::sys::signal::Signal::SIGCONT);

    // Without a [fleet] section: off, said so.
    let mut daemon = sites[0].daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.wait(Duration::from_secs(20));
    let config = sites[0].config();
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| {
            !["[fleet]", "etcd = ", "site = ", "lease = ", "fleet = "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, text).unwrap();
    sites[0].start();
    let until = Instant::now() + Duration::from_secs(20);
    while !status(&sites[0]).contains("fleet guard: off (no [fleet] section)") {
        assert!(
            Instant::now() < until,
            "{}\n{}",
            status(&sites[0]),
            sites[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sites[0]
        .log()
        .contains("fleet guard: off (no [fleet] section)"));
    let value = json(&sites[0]);
    assert_eq!(value["fleet_guard_state"]["on"], false, "{value}");
    assert!(value["fleet_guard_state"]["state"].is_null(), "{value}");
}

/// The record of `site` in etcd, parsed (`None`: no key).
fn record(etcd: &Etcd, site: &str) -> Option<serde_json::Value> {
    etcd.get_prefix(&format!("/anycastd/dns/sites/{site}"))
        .first()
        .map(|(_, v)| serde_json::from_str(v).unwrap())
}

/// Every value written to `key` after revision `after` (puts, oldest first), from etcd's
/// history.
fn writes_since(etcd: &Etcd, key: &str, after: i64) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([etcd.url()], None)
            .await
            .unwrap();
        let now = client
            .get(key, None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        let mut writes = Vec::new();
        for revision in after + 1..=now {
            let options = etcd_client::GetOptions::new().with_revision(revision);
            let response = client.get(key, Some(options)).await.unwrap();
            if let Some(kv) = response.kvs().first() {
                if kv.mod_revision() == revision {
                    writes.push(kv.value_str().unwrap().to_owned());
                }
            }
        }
        writes
    })
}

#[test]
fn a_held_site_restarted_keeps_its_published_cause_and_since_under_its_new_lease() {
    let Some(etcd) = Etcd::start() else { return };
    // Three sites, minimum 3: no withdrawal by health can be granted.
    let mut sites = fleet_of(3, &spec(&etcd), Some(&etcd));
    sites[0].fail(true);
    let until = Instant::now() + Duration::from_secs(20);
    let before = loop {
        if let Some(r) = record(&etcd, "site1").filter(|r| r["state"] == "held") {
            break r;
        }
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        before["cause"]
            .as_str()
            .is_some_and(|c| c.starts_with("check alive failed")),
        "{before}"
    );
    while !sites[0]
        .history()
        .contains("withdrawal held by the fleet guard")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Crash + restart: still held, asked again.
    let (_, always) = restart_sampling(&mut sites, 0);
    assert!(always, "{}", sites[0].log());
    // Past the old lease (2 s): the record is under the new one, and says what it said.
    std::thread::sleep(Duration::from_secs(4));
    let after = record(&etcd, "site1").expect("site1's record is gone");
    assert_eq!(after, before, "{}", sites[0].log());
    assert!(sites[0].announces());
}

#[test]
fn a_held_site_blind_while_etcd_restarts_never_publishes_announcing() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let sites = fleet_of(3, &spec(&etcd), Some(&etcd));
    let before = etcd.revision();
    etcd.kill();
    sites[0].fail(true);
    let until = Instant::now() + Duration::from_secs(30);
    while !sites[0]
        .history()
        .contains("the fleet guard is blind since")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    etcd.restart();
    // Asked again once etcd answers: held, and published held.
    let until = Instant::now() + Duration::from_secs(30);
    while record(&etcd, "site1").is_none_or(|r| r["state"] != "held") {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    // Every write of its key since etcd went away: never "announcing" (it is not healthy).
    let writes = writes_since(&etcd, "/anycastd/dns/sites/site1", before);
    assert!(!writes.is_empty());
    assert!(
        writes.iter().all(|w| !w.contains("\"announcing\"")),
        "{writes:#?}"
    );
    assert!(sites[0].announces());
}

#[test]
fn a_stopped_site_leaves_the_fleet_at_once_and_a_handed_over_one_stays() {
    let Some(etcd) = Etcd::start() else { return };
    // A lease far longer than the test: a key that goes was revoked, not left to lapse.
    let spec = FleetSpec {
        rule: "{ min_announcing = 1 }",
        lease: "120s",
        ..spec(&etcd)
    };
    let mut sites = fleet_of(3, &spec, Some(&etcd));
    // SIGTERM: every prefix withdrawn (a stop is never held), then the lease revoked.
    let mut daemon = sites[2].daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(daemon.wait(Duration::from_secs(20)), 0);
    assert!(!sites[2].announces());
    let keys = etcd.get_prefix("/anycastd/dns/sites/");
    assert_eq!(
        keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["/anycastd/dns/sites/site1", "/anycastd/dns/sites/site2"],
        "{keys:?}"
    );
    assert!(
        sites[2]
            .log()
            .contains("'s lease: its records are gone from etcd"),
        "{}",
        sites[2].log()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["fleet", "-c"])
        .arg(sites[0].config())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("dns: 2 of 2 sites announce\n"), "{text}");
    // `stop --keep-announced`: the prefix stays announced, and so does its record.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["stop", "--keep-announced", "-c"])
        .arg(sites[1].config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut daemon = sites[1].daemon.take().unwrap();
    daemon.wait(Duration::from_secs(20));
    assert!(sites[1].announces());
    let keys = etcd.get_prefix("/anycastd/dns/sites/site2");
    assert!(
        keys.len() == 1 && keys[0].1.contains("\"announcing\""),
        "{keys:?}"
    );
}

#[test]
fn a_wrong_ca_leaves_the_guard_blind_naming_the_tls_failure_and_fleet_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, other) = (dir.path().join("ours"), dir.path().join("other"));
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let Some(pki) = support::servers::Pki::make_in(&ours) else {
        return;
    };
    // Another CA, which did not sign etcd's certificate.
    let Some(wrong) = support::servers::Pki::make_in(&other) else {
        return;
    };
    let Some(etcd) = Etcd::start_tls(&pki) else {
        return;
    };
    let ca = format!("ca = {:?}", wrong.ca.display().to_string());
    let spec = FleetSpec {
        fleet_extra: &ca,
        ..spec(&etcd)
    };
    let sites = vec![Site::new("site1", &spec)];
    watch_until(&sites, "site1 announces", |s| announcing(s) == 1);
    let words = "TLS handshake failed: etcd's certificate is not signed by the configured ca";
    let until = Instant::now() + Duration::from_secs(20);
    while !sites[0].status().contains(words) {
        assert!(
            Instant::now() < until,
            "{}\n{}",
            sites[0].status(),
            sites[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sites[0].status().contains(&format!(
        "fleet guard: on, site site1, etcd {}: BLIND since ",
        etcd.url()
    )));
    assert!(sites[0].log().contains(words), "{}", sites[0].log());
    // A failure is held (blind, "hold"), and the journal says why.
    sites[0].fail(true);
    let until = Instant::now() + Duration::from_secs(20);
    while !sites[0]
        .history()
        .contains("the fleet guard is blind since")
    {
        assert!(Instant::now() < until, "{}", sites[0].log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sites[0].history().contains(words), "{}", sites[0].history());
    assert!(sites[0].announces());
    // `anycastd fleet` with that config: etcd cannot be read (exit 69), naming the TLS failure.
    let fleet = |config: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["fleet", "-c"])
            .arg(config)
            .output()
            .unwrap()
    };
    let out = fleet(&sites[0].config());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(69), "{said}");
    assert!(
        said.contains(&format!("etcd at {} cannot be read: ", etcd.url())) && said.contains(words),
        "{said}"
    );
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    // With the CA that signed it, the same command reads etcd: the CA was the failure.
    let right = dir.path().join("right.toml");
    let text = std::fs::read_to_string(sites[0].config()).unwrap();
    std::fs::write(
        &right,
        text.replace(
            &wrong.ca.display().to_string(),
            &pki.ca.display().to_string(),
        ),
    )
    .unwrap();
    let out = fleet(&right);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_scrape_while_the_routing_daemon_does_not_answer_still_answers_with_the_blind_gauge() {
    let listen = format!("127.0.0.1:{}", support::servers::free_port());
    let metrics = format!("\n[metrics]\nlisten = {listen:?}\n");
    let dead = format!("http://127.0.0.1:{}", support::servers::free_port());
    let spec = FleetSpec {
        etcd: dead,
        rule: "{ min_announcing = 1 }",
        fleet_extra: &metrics,
        check_extra: "",
        web: false,
        hard_check: false,
        lease: "2s",
    };
    let mut site = Site::new("site1", &spec);
    // Its vtysh's reads hang while DIR/slow exists (a slow bgpd).
    let slow = site.dir.path().join("slow");
    site.restart_with_env(&[("FAKE_VTYSH_READ_HANG", slow.to_str().unwrap())]);
    // Started, and a scrape reads its routing daemon.
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&listen).is_err()
        || gauge(&listen, "anycastd_routing_reachable").is_empty()
    {
        assert!(Instant::now() < until, "{}", site.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&slow, "").unwrap();
    // The scrape answers with what it has: the blind gauge, and that the routing daemon's
    // gauges are missing from it.
    let text = scrape(&listen);
    let _ = std::fs::remove_file(&slow);
    assert_eq!(
        samples(&text, "anycastd_fleet_guard_blind"),
        [("anycastd_fleet_guard_blind".to_owned(), 1.0)],
        "{text}"
    );
    assert_eq!(
        samples(&text, "anycastd_scrape_routing_complete"),
        [("anycastd_scrape_routing_complete".to_owned(), 0.0)],
        "{text}"
    );
    assert!(
        samples(&text, "anycastd_prefix_configured").is_empty(),
        "{text}"
    );
    // Answering again: complete again.
    let complete = [("anycastd_scrape_routing_complete".to_owned(), 1.0)];
    let until = Instant::now() + Duration::from_secs(20);
    while gauge(&listen, "anycastd_scrape_routing_complete") != complete {
        assert!(Instant::now() < until, "{}", scrape(&listen));
        std::thread::sleep(Duration::from_millis(100));
    }
}
