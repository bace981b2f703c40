//! Graded announcements end to end, from the config file to the BGP peer: a real FRR as the
//! local speaker, the testbed's gobgpd as the peer. A `deprefer` service that fails stays at
//! the peer with its attributes (a streaming monitor started before sees no withdrawal); a
//! drain or a stop with a grace keeps the route with GRACEFUL_SHUTDOWN (65535:0) for the
//! grace, then withdraws it; a daemon SIGKILLed in the grace and restarted ends it on time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::bgp::{Attributes, Community, LargeCommunity, GRACEFUL_SHUTDOWN};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon::{flag_check, testbed_sections, Daemon};
use support::monitor::Monitor;
use support::peer::{wait_peer_path, PeerPath};
use support::testbed::{Peer, Testbed};

const EXIT: Duration = Duration::from_secs(30);
/// The testbed FRR's AS (default instance), and its address as the peer sees it.
const FRR_AS: u32 = 65536;
const FRR_V4: &str = "192.0.2.1";
const DNS: &str = "203.0.113.53/32";
const DNS_AT_PEER: &str = "default:203.0.113.53/32";
const NTP_AT_PEER: &str = "123:203.0.113.123/32";

/// dns (IPv4, default VRF) de-preferred when unhealthy with `dns_extra` lines; ntp (IPv4, VRF
/// 123) withdrawn when unhealthy, as ever.
fn config(dir: &Path, tb: &Testbed, dns_extra: &str) -> PathBuf {
    let text = format!(
        r#"{sections}
[services.dns]
prefixes.frrouting = ["203.0.113.53"]
checks.exec = [{dns}]
on_unhealthy = "deprefer"
deprefer = {{ as_path_prepend = 3, med = 1000, communities = ["65000:666"], large_communities = ["65000:1:666"] }}
{dns_extra}

[services.ntp]
prefixes.frrouting = [{{ prefix = "203.0.113.123", vrf = "123" }}]
checks.exec = [{ntp}]
"#,
        sections = testbed_sections(dir, &tb.vtysh_args()),
        dns = flag_check(dir, "dns"),
        ntp = flag_check(dir, "ntp"),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn anycastd(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn plain() -> PeerPath {
    PeerPath::plain(FRR_AS)
}

/// The config's deprefer table.
fn deprefer() -> Attributes {
    Attributes {
        as_path_prepend: 3,
        med: Some(1000),
        communities: vec![Community(65000, 666)],
        large_communities: vec![LargeCommunity(65000, 1, 666)],
    }
}

fn depreferred() -> PeerPath {
    PeerPath::expected(FRR_AS, &deprefer())
}

fn in_grace() -> PeerPath {
    PeerPath::expected(FRR_AS, &deprefer().with(GRACEFUL_SHUTDOWN))
}

#[test]
fn a_deprefer_service_stays_at_the_peer_with_its_attributes_and_a_withdraw_service_withdraws() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &tb, "");
    let mut daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&[DNS_AT_PEER, NTP_AT_PEER]);
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());
    let monitor = Monitor::start(&tb, d);

    // dns fails: de-preferred at the peer (AS path prepended 3 times, MED, communities),
    // never withdrawn; then plain again when it recovers.
    std::fs::write(d.join("dns.down"), "").unwrap();
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &depreferred());
    let (_, history) = anycastd(&config, &["history", "dns"]);
    assert!(history.contains("de-prefer"), "{history}");
    std::fs::remove_file(d.join("dns.down")).unwrap();
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());

    // ntp fails: withdrawn, as ever.
    std::fs::write(d.join("ntp.down"), "").unwrap();
    tb.wait_peer(&[DNS_AT_PEER]);
    assert_eq!(monitor.withdrawals(), vec!["203.0.113.123/32".to_owned()]);

    // FRR's running config holds anycastd's maps in use only: none once dns is plain.
    let running = tb.vtysh(&["show running-config bgpd"]);
    assert!(!running.contains("route-map anycastd-"), "{running}");
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
}

/// Poll the peer's path of dns every 50 ms until it is withdrawn: each path seen, with the
/// time since `from`.
fn paths_until_withdrawn(tb: &Testbed, from: Instant) -> Vec<(Duration, PeerPath)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Some(path) = support::peer::peer_path(tb, FRR_V4, "ipv4", DNS) {
        seen.push((from.elapsed(), path));
        assert!(Instant::now() < deadline, "never withdrawn: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

#[test]
fn a_drain_and_a_stop_with_a_grace_keep_the_route_with_graceful_shutdown_then_withdraw_it() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &tb, "drain_grace = \"3s\"");
    let mut daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&[DNS_AT_PEER, NTP_AT_PEER]);
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());

    // An operator drain: the route stays with 65535:0 (and the deprefer attributes) for the
    // grace, then goes.
    let asked = Instant::now();
    let (code, out) = anycastd(&config, &["drain", "dns", "--reason", "maintenance"]);
    assert_eq!(code, 0, "{out}");
    let seen = paths_until_withdrawn(&tb, asked);
    let gone = asked.elapsed();
    let graced: Vec<_> = seen.iter().filter(|(_, p)| *p == in_grace()).collect();
    assert!(!graced.is_empty(), "never seen in grace: {seen:?}");
    assert!(
        graced[0].0 < Duration::from_millis(500),
        "in grace only after {:?}",
        graced[0].0
    );
    assert!(
        seen.iter()
            .skip_while(|(_, p)| *p != in_grace())
            .all(|(_, p)| *p == in_grace()),
        "{seen:?}"
    );
    assert!(
        gone >= Duration::from_millis(2900),
        "withdrawn after {gone:?}"
    );
    let (code, out) = anycastd(&config, &["undrain", "dns"]);
    assert_eq!(code, 0, "{out}");
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());

    // `--grace 0` withdraws at once.
    let (code, out) = anycastd(
        &config,
        &["drain", "dns", "--grace", "0s", "--reason", "now"],
    );
    assert_eq!(code, 0, "{out}");
    tb.wait_peer(&[NTP_AT_PEER]);
    let (code, out) = anycastd(&config, &["undrain", "dns"]);
    assert_eq!(code, 0, "{out}");
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());

    // SIGTERM: dns in its grace, then withdrawn; the daemon exits 0 after.
    let asked = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let seen = paths_until_withdrawn(&tb, asked);
    assert!(seen.iter().any(|(_, p)| *p == in_grace()), "{seen:?}");
    assert!(asked.elapsed() >= Duration::from_millis(2900));
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);

    // A second SIGTERM in a stop's grace withdraws at once.
    let mut daemon = Daemon::start(&config, &d.join("log2"));
    tb.wait_peer(&[DNS_AT_PEER, NTP_AT_PEER]);
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());
    daemon.signal(Signal::SIGTERM);
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &in_grace());
    let second = Instant::now();
    daemon.signal(Signal::SIGTERM);
    tb.wait_peer(&[]);
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "{:?}",
        second.elapsed()
    );
    daemon.wait(EXIT);
}

#[test]
fn a_daemon_sigkilled_in_a_drain_grace_ends_it_on_time_after_a_restart() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &tb, "");
    let mut daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&[DNS_AT_PEER, NTP_AT_PEER]);
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &plain());
    let monitor = Monitor::adj_in(&tb, d);
    let asked = Instant::now();
    let (code, out) = anycastd(
        &config,
        &["drain", "dns", "--grace", "8s", "--reason", "maintenance"],
    );
    assert_eq!(code, 0, "{out}");
    wait_peer_path(&tb, FRR_V4, "ipv4", DNS, &in_grace());
    daemon.signal(Signal::SIGKILL);
    daemon.wait(EXIT);
    let _daemon = Daemon::start(&config, &d.join("log2"));
    let seen = paths_until_withdrawn(&tb, asked);
    let gone = asked.elapsed();
    assert!(
        seen.iter().all(|(_, p)| *p == in_grace()),
        "seen without the community after the restart: {seen:?}"
    );
    assert!(
        gone >= Duration::from_millis(7900) && gone < Duration::from_secs(12),
        "withdrawn {gone:?} after the drain"
    );
    // Every announcement of dns the peer received after the drain carried 65535:0.
    for attrs in monitor.announcements_of(DNS) {
        assert!(
            attrs.communities.contains(&GRACEFUL_SHUTDOWN.as_u32()),
            "announced without GRACEFUL_SHUTDOWN: {attrs:?}"
        );
    }
}
