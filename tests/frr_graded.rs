//! Graded announcements through a real FRR, seen by a real BGP peer: the FRR backend driven
//! by the writer with decisions (as the daemon's services do), without a config file. A
//! level switch (plain, de-preferred, in a graceful drain) is a `network P route-map M` line
//! that changes the route in place: the peer sees the new attributes and never a withdrawal,
//! and FRR keeps exactly anycastd's maps in use, an operator's untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::bgp::{Attributes, Community, LargeCommunity, GRACEFUL_SHUTDOWN};
use anycastd::routing::frr::control::RunningConfig;
use anycastd::routing::frr::{self, route_map, Frr};
use anycastd::routing::writer::{self, Decision, Notice, Outcome, PrefixKey, WriterHandle};
use anycastd::routing::{Backend, BackendId, Place};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::monitor::Monitor;
use support::peer::{wait_peer_path, PeerPath};
use support::rng::Rng;
use support::testbed::{Peer, Testbed};
use tokio::sync::mpsc::UnboundedReceiver;

const HOUR: Duration = Duration::from_secs(3600);

fn deprefer() -> Attributes {
    Attributes {
        as_path_prepend: 3,
        med: Some(1000),
        communities: vec![Community(65000, 666)],
        large_communities: vec![LargeCommunity(65000, 1, 666)],
    }
}

fn drain() -> Attributes {
    deprefer().with(GRACEFUL_SHUTDOWN)
}

fn key(vrf: Option<&str>, prefix: &str) -> PrefixKey {
    (Place::from(vrf), prefix.parse().unwrap())
}

/// A vtysh that counts its calls (one line each in `log`) before running the real one.
fn counting_vtysh(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("vtysh-calls");
    let script = dir.join("vtysh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho call >> '{}'\nexec /usr/bin/vtysh \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn calls(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
}

/// The FRR backend of the testbed, as the daemon builds it (`[frrouting] vtysh_args`), through
/// the vtysh `vtysh`.
fn backend(tb: &Testbed, vtysh: &Path) -> Frr {
    let settings = frr::Settings {
        args: tb.vtysh_args(),
        ..Default::default()
    };
    Frr::new(&BackendId::frr(vtysh), &settings)
}

struct Writer {
    rt: tokio::runtime::Runtime,
    handle: WriterHandle,
    reports: UnboundedReceiver<Notice>,
    seq: u64,
}

impl Writer {
    fn start(frr: Frr) -> Writer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let handle = rt.block_on(async { writer::spawn(frr, HOUR, tx) });
        Writer {
            rt,
            handle,
            reports,
            seq: 0,
        }
    }

    /// Decide `key` announced with `attributes` and wait for its final outcome; returns it.
    fn announce(&mut self, key: &PrefixKey, attributes: &Attributes) -> Outcome {
        self.seq += 1;
        let decision = Decision {
            service: "dns".into(),
            announce: true,
            attributes: attributes.clone(),
            decision_seq: self.seq,
        };
        self.handle.set(vec![(key.clone(), decision.clone())]);
        let deadline = Duration::from_secs(30);
        loop {
            let reports = &mut self.reports;
            let notice = self
                .rt
                .block_on(async { tokio::time::timeout(deadline, reports.recv()).await })
                .expect("an outcome within 30 s")
                .expect("the writer runs");
            let Notice::Outcome(report) = notice else {
                continue;
            };
            if report.key != *key || report.decision != decision {
                continue;
            }
            match report.outcome {
                Outcome::Applied | Outcome::AlreadySo => return report.outcome,
                other => panic!("{key:?} at {attributes}: {other:?}"),
            }
        }
    }
}

/// anycastd's maps in FRR's running config, and the maps its network lines name.
fn own_maps(tb: &Testbed) -> (BTreeSet<String>, BTreeSet<String>) {
    let rc = RunningConfig::parse(&tb.vtysh(&["show running-config bgpd"]));
    let own = rc
        .route_maps
        .iter()
        .filter(|(name, lines)| route_map::is_own(name, lines))
        .map(|(name, _)| name.clone())
        .collect();
    let named = rc
        .instances
        .values()
        .flat_map(|i| i.route_maps.values().cloned())
        .collect();
    (own, named)
}

#[test]
fn level_switches_change_the_route_in_place_and_the_peer_never_sees_a_withdrawal() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::start(&tb, dir.path());
    let frr = backend(&tb, Path::new("/usr/bin/vtysh"));
    let mut writer = Writer::start(frr.clone());
    let v4 = key(None, "203.0.113.53/32");
    let v6 = key(None, "2001:db8::b19:bad:53/128");
    let other = Attributes {
        as_path_prepend: 1,
        med: Some(50),
        ..Attributes::plain()
    };
    let levels = [
        Attributes::plain(),
        deprefer(),
        drain(),
        Attributes::plain(),
        other.clone(),
        deprefer(),
        Attributes::plain(),
    ];
    for (n, level) in levels.iter().enumerate() {
        let decided = Instant::now();
        let outcome = writer.announce(&v4, level);
        let applied = decided.elapsed();
        if n > 0 {
            assert_eq!(outcome, Outcome::Applied, "{level}");
        }
        let expected = PeerPath::expected(65536, level);
        wait_peer_path(&tb, "192.0.2.1", "ipv4", "203.0.113.53/32", &expected);
        // Observed, not asserted: a switch of the map on the line is not delayed by FRR's
        // route-map delay timer (5 s).
        eprintln!(
            "{level}: applied and verified in {applied:?}, at the peer after {:?}",
            decided.elapsed()
        );
        writer.announce(&v6, level);
        wait_peer_path(
            &tb,
            "2001:db8:ffff:1::1",
            "ipv6",
            "2001:db8::b19:bad:53/128",
            &expected,
        );
        // status reads what the best path carries.
        let shown = writer
            .rt
            .block_on(frr.inspect(&[v4.clone(), v6.clone()]))
            .unwrap();
        for s in &shown {
            assert_eq!(s.advertised.as_ref(), Some(level), "{level}");
        }
        // Only the map in use is left.
        let (own, named) = own_maps(&tb);
        assert_eq!(own, named, "at {level}");
        let expected: BTreeSet<String> = (!level.is_plain())
            .then(|| route_map::name(level, 65536))
            .into_iter()
            .collect();
        assert_eq!(own, expected, "at {level}");
    }
    assert!(!monitor.events().is_empty(), "the monitor saw the updates");
    assert_eq!(monitor.withdrawals(), Vec::<String>::new());
    // Every update the peer received carried one of the levels whole: a switch is one
    // UPDATE with the new attributes, never a plain route first and the map after.
    let whole: Vec<PeerPath> = levels
        .iter()
        .map(|l| PeerPath::expected(65536, l))
        .collect();
    let seen = monitor.announcements_of("203.0.113.53/32");
    assert!(seen.len() >= levels.len() - 1, "{seen:?}");
    for path in &seen {
        assert!(whole.contains(path), "{path:?} is no level's: {seen:?}");
    }
}

#[test]
fn a_deprefer_med_of_0_is_read_back_as_advertised_with_it_not_as_drift() {
    // FRR shows MED 0 as it shows no MED (`"metric":0`): the map's `set metric 0` says which.
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let frr = backend(&tb, Path::new("/usr/bin/vtysh"));
    let mut writer = Writer::start(frr.clone());
    let v4 = key(None, "203.0.113.53/32");
    let med0 = Attributes {
        as_path_prepend: 2,
        med: Some(0),
        ..Attributes::plain()
    };
    writer.announce(&v4, &med0);
    let shown = writer
        .rt
        .block_on(frr.inspect(std::slice::from_ref(&v4)))
        .unwrap();
    assert_eq!(shown[0].installed.as_ref(), Some(&med0));
    // Advertised once FRR has a best path for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = writer
            .rt
            .block_on(frr.inspect(std::slice::from_ref(&v4)))
            .unwrap();
        if shown[0].advertised.is_some() {
            assert_eq!(shown[0].advertised.as_ref(), Some(&med0));
            break;
        }
        assert!(Instant::now() < deadline, "no best path for {v4:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_hundred_level_switches_leave_only_the_maps_in_use_and_an_operators_maps_untouched() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // An operator's maps: one of their own name, one named like anycastd's (not its content).
    tb.vtysh(&[
        "configure terminal",
        "route-map OPS-KEEP permit 10",
        "set metric 77",
        "exit",
        "route-map anycastd-ops permit 10",
        "set local-preference 200",
        "exit",
    ]);
    let operators = |tb: &Testbed| -> BTreeMap<String, Vec<String>> {
        let rc = RunningConfig::parse(&tb.vtysh(&["show running-config bgpd"]));
        rc.route_maps
            .into_iter()
            .filter(|(name, _)| name == "OPS-KEEP" || name == "anycastd-ops")
            .collect()
    };
    let before = operators(&tb);
    assert_eq!(before.len(), 2, "{before:?}");
    let monitor = Monitor::start(&tb, dir.path());
    let (vtysh, log) = counting_vtysh(dir.path());
    let mut writer = Writer::start(backend(&tb, &vtysh));
    let prefixes = [
        (key(None, "203.0.113.53/32"), 65536),
        (key(None, "2001:db8::b19:bad:53/128"), 65536),
        (key(Some("123"), "203.0.113.123/32"), 65537),
    ];
    let levels = [
        Attributes::plain(),
        deprefer(),
        drain(),
        Attributes::plain().with(GRACEFUL_SHUTDOWN),
        Attributes {
            as_path_prepend: 1,
            med: Some(50),
            ..Attributes::plain()
        },
    ];
    for (key, _) in &prefixes {
        writer.announce(key, &Attributes::plain());
    }
    let seed = 0x5eed_0023;
    let mut rng = Rng(seed);
    let mut now: BTreeMap<PrefixKey, Attributes> = BTreeMap::new();
    let start = calls(&log);
    let switches = 100;
    for _ in 0..switches {
        let (key, _) = rng.pick(&prefixes);
        let current = now.get(&key).cloned().unwrap_or_default();
        let others: Vec<Attributes> = levels.iter().filter(|l| **l != current).cloned().collect();
        let level = rng.pick(&others);
        assert_eq!(
            writer.announce(&key, &level),
            Outcome::Applied,
            "seed {seed:#x}: {key:?} from {current} to {level}"
        );
        now.insert(key, level);
    }
    let used = calls(&log) - start;
    eprintln!("{switches} level switches (seed {seed:#x}): {used} vtysh calls");
    assert!(
        used <= 3 * switches,
        "at most a read, a write and a read-back per switch: {used}"
    );
    // FRR holds exactly anycastd's maps in use, and the operator's as they were.
    let (own, named) = own_maps(&tb);
    let wanted: BTreeSet<String> = prefixes
        .iter()
        .filter_map(|(key, asn)| {
            let level = now.get(key).cloned().unwrap_or_default();
            (!level.is_plain()).then(|| route_map::name(&level, *asn))
        })
        .collect();
    assert_eq!(own, wanted, "seed {seed:#x}");
    assert_eq!(named, wanted, "seed {seed:#x}");
    assert_eq!(operators(&tb), before);
    // The peer holds every prefix at its last level, and never saw one withdrawn.
    for ((key, asn), (neighbor, afi)) in prefixes.iter().zip([
        ("192.0.2.1", "ipv4"),
        ("2001:db8:ffff:1::1", "ipv6"),
        ("192.0.2.5", "ipv4"),
    ]) {
        let level = now.get(key).cloned().unwrap_or_default();
        let expected = PeerPath::expected(*asn, &level);
        wait_peer_path(&tb, neighbor, afi, &key.1.to_string(), &expected);
    }
    assert_eq!(
        monitor.withdrawals(),
        Vec::<String>::new(),
        "seed {seed:#x}"
    );
}

#[test]
fn an_operators_map_on_anycastds_network_line_is_drift_repaired_in_place() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frr = backend(&tb, Path::new("/usr/bin/vtysh"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let handle = rt.block_on(async { writer::spawn(frr, Duration::from_millis(500), tx) });
    let key = key(None, "203.0.113.53/32");
    let decision = Decision {
        service: "dns".into(),
        announce: true,
        attributes: deprefer(),
        decision_seq: 1,
    };
    handle.set(vec![(key.clone(), decision.clone())]);
    let mut next = || loop {
        let notice = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(30), reports.recv()).await })
            .expect("a report within 30 s")
            .unwrap();
        if let Notice::Outcome(r) = notice {
            return r.outcome;
        }
    };
    assert_eq!(next(), Outcome::Applied);
    wait_peer_path(
        &tb,
        "192.0.2.1",
        "ipv4",
        "203.0.113.53/32",
        &PeerPath::expected(65536, &deprefer()),
    );
    let monitor = Monitor::start(&tb, dir.path());
    // An operator puts a map of their own (the same content) on the line by hand.
    tb.vtysh(&[
        "configure terminal",
        "route-map OPS permit 10",
        "set as-path prepend 65536 65536 65536",
        "set community 65000:666 additive",
        "set large-community 65000:1:666 additive",
        "set metric 1000",
        "exit",
        "router bgp 65536",
        "address-family ipv4 unicast",
        "network 203.0.113.53/32 route-map OPS",
    ]);
    assert_eq!(
        next(),
        Outcome::AttributesDrift {
            installed: Attributes::plain()
        }
    );
    assert_eq!(next(), Outcome::Applied);
    let (own, named) = own_maps(&tb);
    assert_eq!(own, BTreeSet::from([route_map::name(&deprefer(), 65536)]));
    assert_eq!(named, own);
    assert!(
        tb.vtysh(&["show running-config bgpd"])
            .contains("route-map OPS permit 10"),
        "the operator's map is left alone"
    );
    assert_eq!(monitor.withdrawals(), Vec::<String>::new());
}

/// The fake vtysh of the tests that need no root (tests/support/fake_vtysh.py) carries levels
/// as FRR does, for the tests and benches of graded services that use it.
#[test]
fn the_fake_vtysh_carries_levels_and_maps_as_frr_does() {
    let dir = tempfile::tempdir().unwrap();
    let settings = frr::Settings {
        args: vec![
            "--state".into(),
            dir.path().join("frr.json").display().to_string(),
        ],
        ..Default::default()
    };
    let vtysh = support::fake_frr::fake_vtysh();
    let frr = Frr::new(&BackendId::frr(&vtysh), &settings);
    let mut writer = Writer::start(frr.clone());
    let keys = [
        key(None, "203.0.113.53/32"),
        key(Some("123"), "203.0.113.123/32"),
    ];
    for level in [
        Attributes::plain(),
        deprefer(),
        drain(),
        Attributes::plain(),
    ] {
        for key in &keys {
            writer.announce(key, &level);
        }
        let shown = writer.rt.block_on(frr.inspect(&keys)).unwrap();
        for s in &shown {
            assert_eq!(s.advertised.as_ref(), Some(&level));
        }
        let rc = writer.rt.block_on(frr.read()).unwrap();
        let named: BTreeSet<&String> = rc
            .instances
            .values()
            .flat_map(|i| i.route_maps.values())
            .collect();
        let defined: BTreeSet<&String> = rc.route_maps.keys().collect();
        assert_eq!(named, defined, "at {level}");
        assert_eq!(
            defined.len(),
            if level.is_plain() { 0 } else { 2 },
            "one per AS"
        );
    }
}

/// bgpd restarted while a prefix is de-preferred, its saved frr.conf applied as watchfrr does
/// (the instance is back, anycastd's runtime lines are not: neither the network line nor the
/// map): the writer notices the restart and announces the prefix again with its map, the map
/// defined again first, so the peer gets the de-preferred route back and never the plain one.
#[test]
fn a_de_preferred_prefix_comes_back_with_its_map_after_a_bgpd_restart() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::start(backend(&tb, Path::new("/usr/bin/vtysh")));
    let v4 = key(None, "203.0.113.53/32");
    let prefix = "203.0.113.53/32";
    writer.announce(&v4, &deprefer());
    let expected = PeerPath::expected(65536, &deprefer());
    wait_peer_path(&tb, "192.0.2.1", "ipv4", prefix, &expected);
    let wanted = BTreeSet::from([route_map::name(&deprefer(), 65536)]);
    assert_eq!(own_maps(&tb), (wanted.clone(), wanted.clone()));

    let monitor = Monitor::start(&tb, dir.path());
    tb.restart_bgpd(true);
    assert_eq!(
        own_maps(&tb),
        (BTreeSet::new(), BTreeSet::new()),
        "bgpd came back without anycastd's map and line"
    );
    // The writer runs while its notices are read: read them until the peer has the route back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut notices = Vec::new();
    loop {
        let reports = &mut writer.reports;
        while let Ok(Some(notice)) = writer.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(200), reports.recv()).await
        }) {
            notices.push(notice);
        }
        if support::peer::peer_path(&tb, "192.0.2.1", "ipv4", prefix).as_ref() == Some(&expected) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the peer holds {:?}; the writer said {notices:?}",
            support::peer::peer_path(&tb, "192.0.2.1", "ipv4", prefix)
        );
    }
    assert!(
        notices.iter().any(|n| matches!(n, Notice::Restarted(_))),
        "the writer noticed the restart: {notices:?}"
    );
    assert_eq!(own_maps(&tb), (wanted.clone(), wanted), "{notices:?}");
    // Every announcement the peer got after the restart carried the map's attributes.
    let seen = monitor.announcements_of(prefix);
    assert!(!seen.is_empty(), "the monitor saw the route come back");
    for path in &seen {
        assert_eq!(path, &expected, "{seen:?}");
    }
}
