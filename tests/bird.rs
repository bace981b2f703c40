//! The BIRD backend end to end: a real BIRD 2 as the local speaker in a network namespace of
//! the testbed, FRR beside it, and gobgpd as the BGP peer of both. Assertions are on what the
//! peer receives (its adj-in per session, and streaming monitors), on what BIRD has, and on
//! the journal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use anycastd::bgp::{Attributes, Community, LargeCommunity, GRACEFUL_SHUTDOWN};
use anycastd::routing::bird::attrs::RouteOptions;
use anycastd::routing::bird::Bird;
use anycastd::routing::{Backend, BackendId, Change, Installed, Place};
use anycastd_journal::wire::{self, Event};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::daemon::{flag_check, testbed_sections, Daemon};
use support::monitor::Monitor;
use support::peer::{peer_path, PeerPath};
use support::testbed::Testbed;

const EXIT: Duration = Duration::from_secs(30);

/// Every route of the example at the peer: dns's FRR prefix and two BIRD prefixes, ntp's one
/// BIRD prefix.
const ALL: [&str; 4] = [
    "default:203.0.113.53/32",
    "bird:198.51.100.53/32",
    "bird:2001:db8:b::53/128",
    "bird:198.51.100.123/32",
];
const NTP_ONLY: [&str; 1] = ["bird:198.51.100.123/32"];

/// A config for the testbed: `[frrouting]` and `[bird]` pointing at it, then `services`.
fn config(dir: &Path, tb: &Testbed, extra: &str, services: &str) -> PathBuf {
    let text = format!(
        r#"{sections}
[bird]
include_dir = "{include}"
{extra}
{services}"#,
        sections = testbed_sections(dir, &tb.vtysh_args()),
        include = tb.bird_include_dir().display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// dns: one FRR prefix and two BIRD prefixes; ntp: one BIRD prefix (`ntp_prefix`).
fn example(dir: &Path, tb: &Testbed, ntp_prefix: &str) -> String {
    let socket = tb.bird_socket().display().to_string();
    format!(
        r#"[services.dns]
prefixes.frrouting = ["203.0.113.53"]
prefixes.bird = [
    {{ prefix = "198.51.100.53", socket = "{socket}" }},
    {{ prefix = "2001:db8:b::53", socket = "{socket}" }},
]
checks.exec = [{dns}]

[services.ntp]
prefixes.bird = [{{ prefix = "{ntp_prefix}", socket = "{socket}", protocol = "anycastd4" }}]
checks.exec = [{ntp}]
"#,
        dns = flag_check(dir, "dns"),
        ntp = flag_check(dir, "ntp"),
    )
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

/// The journal records of `service` (and the daemon's), through `history --json`.
fn events(config: &Path, service: &str) -> Vec<Event> {
    let (code, out) = anycastd(config, &["history", service, "--json"]);
    assert_eq!(code, 0, "{out}");
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| serde_json::from_value(v["record"].clone()).ok())
        .collect()
}

/// The `route` lines of an include file.
fn file_routes(tb: &Testbed, protocol: &str) -> BTreeSet<String> {
    std::fs::read_to_string(tb.bird_include_dir().join(format!("bird-{protocol}.conf")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("route "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_mixed_service_flips_drains_reloads_and_sigterm_withdraws_everything() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, &tb, "", &example(d, &tb, "198.51.100.123"));
    let mut daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&ALL);
    // What BIRD has, and the files it loaded them from.
    assert_eq!(
        tb.bird_routes("anycastd4"),
        set(&["198.51.100.53/32", "198.51.100.123/32"])
    );
    assert_eq!(tb.bird_routes("anycastd6"), set(&["2001:db8:b::53/128"]));
    assert_eq!(
        file_routes(&tb, "anycastd4"),
        set(&["198.51.100.53/32", "198.51.100.123/32"])
    );

    // dns fails: its FRR and BIRD prefixes go, ntp's stays.
    std::fs::write(d.join("dns.down"), "").unwrap();
    tb.wait_peer(&NTP_ONLY);
    let (_, history) = anycastd(&config, &["history", "dns"]);
    // (The testbed's BIRD is not at the default socket: labels name it.)
    let socket = tb.bird_socket().display().to_string();
    assert!(
        history.contains(&format!("healthy -> unhealthy: withdraw 203.0.113.53/32, 198.51.100.53/32 (BIRD protocol anycastd4 at {socket}), 2001:db8:b::53/128 (BIRD protocol anycastd6 at {socket}) (check dns failed: exit 1: dns is down); FRR applied ")) && history.contains("; BIRD applied "),
        "{history}"
    );
    std::fs::remove_file(d.join("dns.down")).unwrap();
    tb.wait_peer(&ALL);
    // replay names each prefix's routing daemon.
    let (code, replay) = anycastd(&config, &["replay", "dns"]);
    assert_eq!(code, 0, "{replay}");
    assert!(
        replay.contains(&format!("prefixes: 203.0.113.53/32 (FRR), 198.51.100.53/32 (BIRD at {socket}, protocol anycastd4), 2001:db8:b::53/128 (BIRD at {socket}, protocol anycastd6)")),
        "{replay}"
    );

    // status tells configured from advertised for BIRD prefixes, from BIRD's own view.
    let (code, json) = anycastd(&config, &["status", "--json"]);
    assert_eq!(code, 0, "{json}");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ntp = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ntp")
        .unwrap();
    let p = &ntp["prefixes"][0];
    assert_eq!(
        (
            p["backend"].as_str(),
            p["protocol"].as_str(),
            p["configured"].as_bool(),
            p["advertised"].as_bool(),
            p["established_peers"].as_u64()
        ),
        (
            Some("bird"),
            Some("anycastd4"),
            Some(true),
            Some(true),
            Some(1)
        ),
        "{p}"
    );
    // BIRD stops exporting it (the session to the peer is disabled): configured, not
    // advertised.
    tb.birdc(&["disable", "peer_v4"]);
    let (_, text) = anycastd(&config, &["status"]);
    assert!(
        text.contains("198.51.100.123/32 (BIRD protocol anycastd4): wanted announced; BIRD: configured, not advertised: no established BGP protocol exports it"),
        "{text}"
    );
    tb.birdc(&["enable", "peer_v4"]);
    tb.wait_peer(&ALL);

    // An operator drain of ntp withdraws its BIRD prefix only; undrain brings it back.
    let (code, out) = anycastd(&config, &["drain", "ntp", "--reason", "maintenance"]);
    assert_eq!(code, 0, "{out}");
    tb.wait_peer(&ALL[..3]);
    let (code, out) = anycastd(&config, &["undrain", "ntp"]);
    assert_eq!(code, 0, "{out}");
    tb.wait_peer(&ALL);

    // A reload moves ntp to another prefix: the old one is withdrawn, the new one announced.
    let config = self::config(d, &tb, "", &example(d, &tb, "198.51.100.124"));
    let (code, out) = anycastd(&config, &["reload"]);
    assert_eq!(code, 0, "{out}");
    tb.wait_peer(&[ALL[0], ALL[1], ALL[2], "bird:198.51.100.124/32"]);

    // SIGTERM: everything withdrawn at the peer, BIRD's protocols and the files empty.
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
    assert!(tb.bird_routes("anycastd4").is_empty());
    assert!(tb.bird_routes("anycastd6").is_empty());
    assert!(file_routes(&tb, "anycastd4").is_empty());
    let stopped = events(&config, "dns");
    assert!(
        matches!(
            stopped.last(),
            Some(Event::DaemonStopped(wire::DaemonStopped {
                outcome: wire::StopOutcome::WithdrawnAll,
                ..
            }))
        ),
        "{:?}",
        stopped.last()
    );

    // SIGINT does the same.
    let mut daemon = Daemon::start(&config, &d.join("log2"));
    tb.wait_peer(&[ALL[0], ALL[1], ALL[2], "bird:198.51.100.124/32"]);
    daemon.signal(Signal::SIGINT);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
}

#[test]
fn a_change_moves_only_its_own_prefix_and_never_refreshes_the_session() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket = tb.bird_socket().display().to_string();
    let services: String = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "[services.{name}]\nprefixes.bird = [{{ prefix = \"198.51.100.{}\", socket = \"{socket}\" }}]\nchecks.exec = [{}]\n",
                i + 1,
                flag_check(d, name)
            )
        })
        .collect();
    let config = config(d, &tb, "", &services);
    let _daemon = Daemon::start(&config, &d.join("log"));
    let all = [
        "bird:198.51.100.1/32",
        "bird:198.51.100.2/32",
        "bird:198.51.100.3/32",
    ];
    tb.wait_peer(&all);

    let monitor = Monitor::adj_in(&tb, d);
    std::fs::write(d.join("c.down"), "").unwrap();
    tb.wait_peer(&all[..2]);
    std::fs::remove_file(d.join("c.down")).unwrap();
    tb.wait_peer(&all);
    std::thread::sleep(Duration::from_secs(1));
    // (gobgp may report one path event in more than one message.)
    let seen = monitor.events();
    let prefixes: BTreeSet<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        prefixes,
        BTreeSet::from(["198.51.100.3/32"]),
        "the peer received more than the one prefix that changed: {seen:?}"
    );
    assert!(seen.iter().any(|(_, withdrawal)| *withdrawal), "{seen:?}");
    assert!(seen.iter().any(|(_, withdrawal)| !*withdrawal), "{seen:?}");

    // The oracle sees a refresh when one happens: BIRD re-sends everything it exports.
    tb.birdc(&["reload", "out", "peer_v4"]);
    wait_until("the refresh at the monitor", || {
        let prefixes: BTreeSet<String> = monitor.events().into_iter().map(|(p, _)| p).collect();
        prefixes.contains("198.51.100.1/32") && prefixes.contains("198.51.100.2/32")
    });
}

#[test]
fn sigkill_restart_keeps_everything_a_bird_restart_is_journaled_and_a_boot_starts_empty() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let config = config(d, &tb, &extra, &example(d, &tb, "198.51.100.123"));
    let mut daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&ALL);

    // SIGKILL and start again: the crash-restart rule keeps everything; the peer never sees
    // a withdrawal.
    let monitor = Monitor::start(&tb, d);
    daemon.signal(Signal::SIGKILL);
    daemon.wait(EXIT);
    let mut daemon = Daemon::start(&config, &d.join("log2"));
    daemon.wait_log("is kept announced");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(monitor.withdrawals(), Vec::<String>::new());
    assert_eq!(tb.peer_routes(), set(&ALL));
    drop(monitor);

    // BIRD restarts: it loads the file anycastd keeps, and anycastd notices within a second.
    tb.bird_ctl("restart-bird");
    tb.wait_peer(&ALL);
    wait_until("the restart record", || {
        events(&config, "dns")
            .iter()
            .any(|e| matches!(e, Event::RoutingRestarted(r) if r.service == "dns"))
    });
    let restarts: Vec<wire::RoutingRestarted> = events(&config, "dns")
        .into_iter()
        .filter_map(|e| match e {
            Event::RoutingRestarted(r) => Some(r),
            _ => None,
        })
        .collect();
    let dns = restarts.iter().find(|r| r.service == "dns").unwrap();
    assert_eq!(
        (dns.daemon.as_str(), dns.prefixes.len(), dns.total),
        ("BIRD", 2, 3)
    );
    let (_, history) = anycastd(&config, &["history", "ntp"]);
    assert!(
        history.contains(&format!("BIRD restarted; re-announcing 1 prefix(es) of this service: 198.51.100.123/32 (BIRD protocol anycastd4 at {}) (3 in all there)", tb.bird_socket().display())),
        "{history}"
    );
    let metrics = reqwest_free_get(port, "/metrics");
    let socket = tb.bird_socket().display().to_string();
    assert!(
        metrics.contains(&format!(
            "anycastd_routing_restarts_total{{backend=\"bird\",endpoint=\"{socket}\"}} 1"
        )),
        "{metrics}"
    );
    // The conversations with BIRD are counted per socket (at least the start-up read, the
    // first announcement and its read-back).
    let conversations = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "anycastd_bird_conversations_total{{socket=\"{socket}\"}} "
            ))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(conversations >= 3.0, "{metrics}");

    // BIRD is down when dns fails: the withdrawal goes into the include files, so the BIRD
    // that starts again loads nothing of dns's.
    tb.bird_ctl("stop-bird");
    std::fs::write(d.join("dns.down"), "").unwrap();
    wait_until("dns's withdrawal in the files", || {
        file_routes(&tb, "anycastd4") == set(&["198.51.100.123/32"])
            && file_routes(&tb, "anycastd6").is_empty()
    });
    tb.bird_ctl("start-bird");
    assert_eq!(tb.bird_routes("anycastd4"), set(&["198.51.100.123/32"]));
    assert!(tb.bird_routes("anycastd6").is_empty());
    std::fs::remove_file(d.join("dns.down")).unwrap();
    tb.wait_peer(&ALL);

    // A boot: anycastd and BIRD gone, /run cleared, dns failing. BIRD starts without the
    // file (the include pattern allows that) and announces nothing of anycastd's; anycastd
    // then announces only what its checks pass.
    daemon.signal(Signal::SIGKILL);
    daemon.wait(EXIT);
    tb.bird_ctl("stop-bird");
    std::fs::remove_dir_all(tb.bird_include_dir()).unwrap();
    std::fs::write(d.join("dns.down"), "").unwrap();
    tb.bird_ctl("start-bird");
    assert!(tb.bird_routes("anycastd4").is_empty());
    assert!(tb.bird_routes("anycastd6").is_empty());
    let _daemon = Daemon::start(&config, &d.join("log3"));
    // FRR kept dns's prefix (it did not reboot here); the first verdict withdraws it.
    tb.wait_peer(&NTP_ONLY);
    assert_eq!(file_routes(&tb, "anycastd4"), set(&["198.51.100.123/32"]));
}

/// GET `path` from 127.0.0.1:`port` with a bare HTTP/1.0 request.
fn reqwest_free_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn drift_orphans_and_an_unreachable_bird_are_handled_per_prefix() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fast = "reconcile_interval = \"1s\"\n";
    // One more service on a BIRD that does not exist.
    let web = format!(
        "[services.web]\nprefixes.bird = [{{ prefix = \"198.51.100.80\", socket = \"{}\", protocol = \"web4\" }}]\nchecks.exec = [{}]\n",
        d.join("no-bird.ctl").display(),
        flag_check(d, "web")
    );
    // And one whose IPv6 prefix names an IPv4 static protocol.
    let wrong = format!(
        "[services.wrong]\nprefixes.bird = [{{ prefix = \"2001:db8:66::1\", socket = \"{}\", protocol = \"spare4\" }}]\nchecks.exec = [{}]\n",
        tb.bird_socket().display(),
        flag_check(d, "wrong")
    );
    let services = example(d, &tb, "198.51.100.123") + &web + &wrong;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fast = format!("{fast}[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let config = config(d, &tb, &fast, &services);
    let mut daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&ALL);

    // web's BIRD cannot be reached: an error for its prefix alone.
    let (_, status) = anycastd(&config, &["status"]);
    assert!(
        status.contains(&format!(
            "198.51.100.80/32 (BIRD protocol web4): wanted announced; BIRD unreadable: BIRD is not running (control socket {}: no such file)",
            d.join("no-bird.ctl").display()
        )),
        "{status}"
    );

    // The wrong family is an error for that prefix alone, found before anything is written:
    // dns's changes in the same BIRD never fail for it.
    assert!(
        status.contains("2001:db8:66::1/128 (BIRD protocol spare4): MISMATCH: wanted announced, absent in BIRD; the writer is retrying: 2001:db8:66::1/128 cannot go into BIRD protocol spare4: its channel is of the other family"),
        "{status}"
    );
    assert!(!tb.bird_include_dir().join("bird-spare4.conf").exists());
    std::fs::write(d.join("dns.down"), "").unwrap();
    tb.wait_peer(&["bird:198.51.100.123/32"]);
    std::fs::remove_file(d.join("dns.down")).unwrap();
    tb.wait_peer(&ALL);
    let dns_failures: Vec<String> = events(&config, "dns")
        .into_iter()
        .filter_map(|e| match e {
            Event::Apply(a) => match a.outcome {
                wire::Outcome::Failed(error) => Some(error),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(dns_failures, Vec::<String>::new());

    // (Before any BIRD restart here: after one, retries are quick for a minute anyway.)
    // A syntax error in BIRD's own configuration: every `configure` is refused (8002) and
    // ntp's changes wait with BIRD's message.
    let main_conf = tb.dir.join("bird/bird.conf");
    let good = std::fs::read_to_string(&main_conf).unwrap();
    let refused = |wanted: &str| {
        let text = format!(
            "198.51.100.123/32 (BIRD protocol anycastd4): MISMATCH: {wanted}; the writer is retrying: BIRD at {}: configure: 8002 {}:",
            tb.bird_socket().display(),
            main_conf.display()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, status) = anycastd(&config, &["status"]);
            if status.contains(&text) {
                break;
            }
            assert!(Instant::now() < deadline, "{status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (dns_only, with_ntp) = (
        set(&["198.51.100.53/32"]),
        set(&["198.51.100.53/32", "198.51.100.123/32"]),
    );
    std::fs::write(&main_conf, format!("{good}this is not bird;\n")).unwrap();
    std::fs::write(d.join("ntp.down"), "").unwrap();
    refused("wanted withdrawn, present in BIRD");
    // What the metrics say in this state is what AnycastdWithdrawalNotApplied fires on
    // (its promtool unit test in dist/prometheus feeds these two series).
    let metrics = reqwest_free_get(port, "/metrics");
    let sample = |name: &str| {
        let labels = format!(
            "{name}{{service=\"ntp\",prefix=\"198.51.100.123/32\",table=\"anycastd4\",backend=\"bird\",endpoint=\"{}\"}} ",
            tb.bird_socket().display()
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&labels))
            .map(str::to_owned)
    };
    assert_eq!(
        (
            sample("anycastd_prefix_wanted_announced").as_deref(),
            sample("anycastd_prefix_configured").as_deref()
        ),
        (Some("0"), Some("1")),
        "{metrics}"
    );
    // A refused withdrawal stays in the file (BIRD still has the route): the operator's own
    // configure, once bird.conf is fixed, withdraws it. Attempts at 0, 0.5, 1.5 and 3.5 s;
    // idle passes meanwhile keep the withdrawal in the file.
    assert_eq!(file_routes(&tb, "anycastd4"), dns_only);
    assert_eq!(tb.bird_routes("anycastd4"), with_ntp);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(tb.peer_routes(), set(&ALL), "nothing changed at the peer");
    assert_eq!(file_routes(&tb, "anycastd4"), dns_only);
    // dns goes down too: its withdrawals are refused in a run of their own, and the file
    // put back after it still leaves ntp's out (every withdrawal wanted, not only the run's).
    std::fs::write(d.join("dns.down"), "").unwrap();
    tb.wait_peer(&[
        "bird:198.51.100.53/32",
        "bird:2001:db8:b::53/128",
        "bird:198.51.100.123/32",
    ]);
    wait_until("dns's withdrawal refused", || {
        anycastd(&config, &["status"]).1.contains(
            "198.51.100.53/32 (BIRD protocol anycastd4): MISMATCH: wanted withdrawn, present in BIRD",
        )
    });
    // Through dns's retries and the idle passes between them, neither comes back.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(file_routes(&tb, "anycastd4"), set(&[]));
        assert_eq!(file_routes(&tb, "anycastd6"), set(&[]));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(&main_conf, &good).unwrap();
    assert!(tb.birdc(&["configure"]).contains("Reconfigured"));
    tb.wait_peer(&[]);
    std::fs::remove_file(d.join("dns.down")).unwrap();
    tb.wait_peer(&ALL[..3]);
    // A refused announcement is not kept (the file is put back as BIRD runs it): once the
    // operator fixes bird.conf and reconfigures, anycastd sees BIRD's new configuration and
    // retries at once, not at the end of its backoff (by then 4 s).
    std::fs::write(&main_conf, format!("{good}this is not bird;\n")).unwrap();
    std::fs::remove_file(d.join("ntp.down")).unwrap();
    refused("wanted announced, absent in BIRD");
    assert_eq!(file_routes(&tb, "anycastd4"), dns_only);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        tb.peer_routes(),
        set(&ALL[..3]),
        "nothing changed at the peer"
    );
    let retries = "BIRD loaded a new configuration: retrying the changes set aside";
    let before = daemon.log_text().matches(retries).count();
    std::fs::write(&main_conf, &good).unwrap();
    assert!(tb.birdc(&["configure"]).contains("Reconfigured"));
    tb.wait_peer(&ALL);
    assert!(
        daemon.log_text().matches(retries).count() > before,
        "{}",
        daemon.log_text()
    );
    assert_eq!(file_routes(&tb, "anycastd4"), with_ntp);

    // While BIRD is down, nothing is added to the files (a wrong-family route there would keep
    // BIRD from starting); it starts again and loads what it had.
    tb.bird_ctl("stop-bird");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!tb.bird_include_dir().join("bird-spare4.conf").exists());
    tb.bird_ctl("start-bird");
    tb.wait_peer(&ALL);

    // A hand edit of the include file, loaded by `configure`: dns's IPv4 prefix is gone
    // from BIRD. Found and repaired at the next pass, journaled as drift.
    let file = tb.bird_include_dir().join("bird-anycastd4.conf");
    std::fs::write(&file, "route 198.51.100.123/32 blackhole;\n").unwrap();
    tb.birdc(&["configure"]);
    wait_until("the repair", || {
        tb.bird_routes("anycastd4") == set(&["198.51.100.53/32", "198.51.100.123/32"])
    });
    assert!(events(&config, "dns").iter().any(|e| matches!(
        e,
        Event::Drift(wire::Drift { service, present: false, wanted: true, prefix })
            if service == "dns" && prefix.prefix == "198.51.100.53/32" && prefix.backend == "bird"
    )));

    // A `configure` of another file (without anycastd's includes): every route goes;
    // repaired with the daemon's own configuration file.
    let other = d.join("other.conf");
    let main = std::fs::read_to_string(tb.dir.join("bird/bird.conf")).unwrap();
    let without: String = main
        .lines()
        .filter(|l| !l.starts_with("include"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&other, without).unwrap();
    let reply = tb.birdc(&["configure", &format!("\"{}\"", other.display())]);
    assert!(reply.contains("Reconfigured"), "{reply}");
    wait_until("the repair after another file", || {
        tb.bird_routes("anycastd4") == set(&["198.51.100.53/32", "198.51.100.123/32"])
            && tb.bird_routes("anycastd6") == set(&["2001:db8:b::53/128"])
    });
    tb.wait_peer(&ALL);

    // A hand edit that is never loaded: the file is put back to what BIRD runs.
    std::fs::write(&file, "route 192.0.2.99/32 blackhole;\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while file_routes(&tb, "anycastd4") != set(&["198.51.100.53/32", "198.51.100.123/32"]) {
        assert!(
            Instant::now() < deadline,
            "the file was not rewritten: {:?}, BIRD has {:?}\n{}",
            file_routes(&tb, "anycastd4"),
            tb.bird_routes("anycastd4"),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Orphans: hand over, drop ntp from the config, start: ntp's prefix is withdrawn, dns's
    // kept without a flap.
    let (code, out) = anycastd(&config, &["stop", "--keep-announced"]);
    assert_eq!(code, 0, "{out}");
    daemon.wait(EXIT);
    assert_eq!(tb.peer_routes(), set(&ALL));
    let without_ntp = example(d, &tb, "198.51.100.123");
    let dns_only = without_ntp
        .split("[services.ntp]")
        .next()
        .unwrap()
        .to_owned();
    let config = self::config(d, &tb, &fast, &dns_only);
    let mut second = Daemon::start(&config, &d.join("log2"));
    tb.wait_peer(&ALL[..3]);
    let (_, history) = anycastd(&config, &["history", "ntp"]);
    assert!(
        history.contains(&format!(
            "withdraw 198.51.100.123/32 (BIRD protocol anycastd4 at {}) of ntp (orphan: no longer configured there): BIRD applied",
            tb.bird_socket().display()
        )),
        "{history}"
    );

    // A stop while BIRD refuses every configure (bird.conf broken): FRR's prefix is
    // withdrawn, BIRD's cannot be, and the stop says so (exit 70). The include files already
    // withdraw them: the operator's fix and `birdc configure` take them away with anycastd
    // gone.
    std::fs::write(&main_conf, format!("{good}this is not bird;\n")).unwrap();
    let (code, out) = anycastd(&config, &["stop"]);
    assert_eq!(code, 70, "{out}");
    second.wait(EXIT);
    // The client names what is left, one line each with its daemon and BIRD's error; FRR's
    // prefix, withdrawn, is not among them.
    let left: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("anycastd: not verified withdrawn: "))
        .collect();
    let socket = tb.bird_socket();
    for (prefix, protocol) in [
        ("198.51.100.53/32", "anycastd4"),
        ("2001:db8:b::53/128", "anycastd6"),
    ] {
        let named = format!(
            "anycastd: not verified withdrawn: {prefix} (BIRD at {}, protocol {protocol}): ",
            socket.display()
        );
        assert!(
            left.iter()
                .any(|l| l.starts_with(&named) && l.len() > named.len()),
            "{out}"
        );
    }
    assert_eq!(left.len(), 2, "{out}");
    assert!(
        second
            .log_text()
            .contains("For BIRD, anycastd's include files already leave them out: fix what BIRD refused and run `birdc configure`; a BIRD that is not running does not announce them when it starts."),
        "{}",
        second.log_text()
    );
    tb.wait_peer(&["bird:198.51.100.53/32", "bird:2001:db8:b::53/128"]);
    assert_eq!(file_routes(&tb, "anycastd4"), set(&[]));
    assert_eq!(file_routes(&tb, "anycastd6"), set(&[]));
    std::fs::write(&main_conf, &good).unwrap();
    assert!(tb.birdc(&["configure"]).contains("Reconfigured"));
    tb.wait_peer(&[]);
}

/// Milliseconds since `t`.
fn ms_since(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

/// Whether gobgpd's sessions with `neighbors` are all Established.
fn established(tb: &Testbed, neighbors: &[&str]) -> bool {
    neighbors.iter().all(|n| {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}-peer", tb.name)])
            .args(["gobgp", "neighbor", n, "-j"])
            .output()
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        json["state"]["session_state"] == 6 || json["state"]["session_state"] == "established"
    })
}

#[test]
fn bgpd_and_bird_restarts_are_repaired_within_seconds_and_the_times_are_recorded() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket = tb.bird_socket().display().to_string();
    // The README example's four FRR prefixes, and one BIRD prefix per service.
    let services = format!(
        r#"[services.dns]
prefixes.frrouting = ["2001:db8::b19:bad:53", "203.0.113.53"]
prefixes.bird = [{{ prefix = "198.51.100.53", socket = "{socket}" }}]
checks.exec = [{dns}]

[services.ntp]
prefixes.frrouting = [
    {{ prefix = "2001:db8::123:7e11:713e", vrf = "123" }},
    {{ prefix = "203.0.113.123", vrf = "123" }},
]
prefixes.bird = [{{ prefix = "2001:db8:b::123", socket = "{socket}" }}]
checks.exec = [{ntp}]
"#,
        dns = flag_check(d, "dns"),
        ntp = flag_check(d, "ntp"),
    );
    let config = config(d, &tb, "", &services);
    let _daemon = Daemon::start(&config, &d.join("log"));
    let all = [
        "default:203.0.113.53/32",
        "default:2001:db8::b19:bad:53/128",
        "123:203.0.113.123/32",
        "123:2001:db8::123:7e11:713e/128",
        "bird:198.51.100.53/32",
        "bird:2001:db8:b::123/128",
    ];
    tb.wait_peer(&all);
    let frr_networks = set(&[
        "default:203.0.113.53/32",
        "default:2001:db8::b19:bad:53/128",
        "123:203.0.113.123/32",
        "123:2001:db8::123:7e11:713e/128",
    ]);
    let frr_neighbors = [
        "192.0.2.1",
        "2001:db8:ffff:1::1",
        "192.0.2.5",
        "2001:db8:ffff:2::1",
    ];

    // bgpd dies and stays down for a while: status says why, in those words.
    tb.stop_bgpd();
    std::thread::sleep(Duration::from_secs(2));
    let (_, status) = anycastd(&config, &["status"]);
    assert!(status.contains("bgpd is not running"), "{status}");
    assert!(!status.contains("no BGP instance"), "{status}");

    // It comes back empty and is booted as watchfrr does (`vtysh -b`).
    tb.start_bgpd(false);
    let accepting = Instant::now();
    let boot = Command::new("/usr/bin/vtysh")
        .args(tb.vtysh_args())
        .args(["-b", "-d", "bgpd"])
        .output()
        .unwrap();
    assert!(boot.status.success(), "{boot:?}");
    wait_until("FRR configured again", || tb.networks().0 == frr_networks);
    let frr_configured_ms = ms_since(accepting);
    wait_until("the FRR sessions", || established(&tb, &frr_neighbors));
    let sessions_up = Instant::now();
    tb.wait_peer(&all);
    let frr_peer_ms = ms_since(sessions_up);
    wait_until("the bgpd restart record", || {
        events(&config, "ntp").iter().any(|e| {
            matches!(e, Event::RoutingRestarted(r) if r.daemon == "bgpd" && r.prefixes.len() == 2 && r.total == 4)
        })
    });

    // BIRD dies and comes back: it reads the include files anycastd keeps.
    tb.bird_ctl("stop-bird");
    std::thread::sleep(Duration::from_secs(2));
    tb.bird_ctl("start-bird");
    let bird_accepting = Instant::now();
    wait_until("BIRD configured again", || {
        tb.bird_routes("anycastd4").len() == 1 && tb.bird_routes("anycastd6").len() == 1
    });
    let bird_configured_ms = ms_since(bird_accepting);
    wait_until("the BIRD sessions", || {
        established(&tb, &["192.0.2.9", "2001:db8:ffff:3::1"])
    });
    let bird_sessions_up = Instant::now();
    tb.wait_peer(&all);
    let bird_peer_ms = ms_since(bird_sessions_up);

    let record = format!(
        "bgpd restart: configured again {frr_configured_ms} ms after bgpd accepted commands, \
         at the peer {frr_peer_ms} ms after its sessions were up; BIRD restart: configured \
         again {bird_configured_ms} ms after BIRD accepted commands, at the peer \
         {bird_peer_ms} ms after its sessions were up\n"
    );
    eprintln!("MEASURED: {record}");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("restart-times.txt");
    let mut all_records = std::fs::read_to_string(&file).unwrap_or_default();
    all_records.push_str(&record);
    std::fs::write(&file, all_records).unwrap();
}

#[test]
fn a_reload_to_another_bird_leaves_no_writer_fighting_over_the_file_and_the_stop_names_the_old_place(
) {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ntp = |socket: &Path| {
        format!(
            "[services.ntp]\nprefixes.bird = [{{ prefix = \"198.51.100.123\", socket = \"{}\" }}]\nchecks.exec = [{}]\n",
            socket.display(),
            flag_check(d, "ntp")
        )
    };
    // First on a BIRD that does not run, then moved to the real one by a reload.
    let config = config(d, &tb, "", &ntp(&d.join("no-bird.ctl")));
    let mut daemon = Daemon::start(&config, &d.join("log"));
    daemon.wait_log("BIRD is not running");
    let config = self::config(d, &tb, "", &ntp(&tb.bird_socket()));
    let (code, out) = anycastd(&config, &["reload"]);
    assert_eq!(code, 0, "{out}");
    // The answer names both sockets and says what the peer sees of the move.
    let (old, new) = (d.join("no-bird.ctl"), tb.bird_socket());
    assert!(
        out.contains(&format!(
            "prefix 198.51.100.123/32 (BIRD protocol anycastd4 at {}) removed, prefix 198.51.100.123/32 (BIRD protocol anycastd4 at {}) added, 198.51.100.123/32 moves from BIRD protocol anycastd4 at {} to BIRD protocol anycastd4 at {}: withdrawn from the old place now and announced at the new one if the service is healthy, so BGP peers see it withdrawn and announced again (a flap)",
            old.display(), new.display(), old.display(), new.display()
        )),
        "{out}"
    );
    tb.wait_peer(&NTP_ONLY);
    // The writer of the BIRD that does not run leaves the file the live one keeps alone.
    for _ in 0..30 {
        assert_eq!(file_routes(&tb, "anycastd4"), set(&["198.51.100.123/32"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    // A stop withdraws at the live BIRD. The other could never be read: its withdrawal is
    // not verified, and the stop says so (exit 70) with what is known.
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 70, "{}", daemon.log_text());
    tb.wait_peer(&[]);
    assert!(file_routes(&tb, "anycastd4").is_empty());
    assert!(
        daemon.log_text().contains(&format!(
            "still announced or unknown: 198.51.100.123/32 (BIRD protocol anycastd4 at {})",
            old.display()
        )),
        "{}",
        daemon.log_text()
    );
}

/// ntp alone, one prefix on the testbed's BIRD and a flag-file check, running and announced
/// at the peer: its config and daemon.
fn ntp_on_bird(tb: &Testbed, d: &Path) -> (PathBuf, Daemon) {
    let services = format!(
        "[services.ntp]\nprefixes.bird = [{{ prefix = \"198.51.100.123\", socket = \"{}\" }}]\nchecks.exec = [{}]\n",
        tb.bird_socket().display(),
        flag_check(d, "ntp")
    );
    let config = config(d, tb, "", &services);
    let daemon = Daemon::start(&config, &d.join("log"));
    tb.wait_peer(&NTP_ONLY);
    (config, daemon)
}

#[test]
fn decisions_and_a_stop_while_bird_is_stopped_say_they_were_not_applied() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket = tb.bird_socket();
    let (config, mut daemon) = ntp_on_bird(&tb, d);

    // BIRD stops, then ntp fails: the withdrawal cannot be applied or read back. The
    // include file leaves the route out (BIRD loads it when it starts), and the journal says
    // so: not "already so".
    tb.bird_ctl("stop-bird");
    std::fs::write(d.join("ntp.down"), "").unwrap();
    let file = tb.bird_include_dir().join("bird-anycastd4.conf");
    let not_applied = format!(
        "BIRD FAILED for 198.51.100.123/32 (BIRD protocol anycastd4 at {s}): cannot read BIRD: BIRD is not running (control socket {s}: ",
        s = socket.display()
    );
    let known = format!(
        "not applied; the include file {} leaves it out, so a BIRD that starts does not announce it (retrying)",
        file.display()
    );
    wait_until("the withdrawal journaled as not applied", || {
        let (_, history) = anycastd(&config, &["history", "ntp"]);
        history.contains(&not_applied) && history.contains(&known)
    });
    let (_, history) = anycastd(&config, &["history", "ntp"]);
    assert!(!history.contains("already so"), "{history}");
    assert!(file_routes(&tb, "anycastd4").is_empty());

    // A stop in that state: nothing verified at BIRD, so not "every prefix withdrawn".
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 70, "{}", daemon.log_text());
    assert!(
        daemon
            .log_text()
            .contains("a BIRD that is not running does not announce them when it starts"),
        "{}",
        daemon.log_text()
    );
    let stopped = events(&config, "ntp");
    match stopped.last() {
        Some(Event::DaemonStopped(wire::DaemonStopped {
            outcome: wire::StopOutcome::Left(left),
            ..
        })) => assert_eq!(
            left.iter().map(|p| p.prefix.as_str()).collect::<Vec<_>>(),
            ["198.51.100.123/32"]
        ),
        other => panic!("{other:?}"),
    }
    // What the file said holds: BIRD starts without the route.
    tb.bird_ctl("start-bird");
    assert!(tb.bird_routes("anycastd4").is_empty());
}

#[test]
fn a_withdrawal_bird_confirms_only_once_it_runs_again_reads_as_retried_in_plain_history() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket = tb.bird_socket();
    let (config, mut daemon) = ntp_on_bird(&tb, d);
    let not_running = format!(
        "failed attempt(s) before (the last: cannot read BIRD: BIRD is not running (control \
         socket {}: ",
        socket.display()
    );
    // The plain history line of the latest event whose text contains `event`, once it
    // contains `outcome`.
    // (Up to a minute: a retry's backoff reaches 30 s while BIRD is stopped.)
    let line_of = |event: &str, outcome: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, history) = anycastd(&config, &["history", "ntp"]);
            let found = history
                .lines()
                .rfind(|l| l.contains(event))
                .unwrap_or_default()
                .to_owned();
            if found.contains(outcome) {
                return found;
            }
            if Instant::now() > deadline {
                let (_, verbose) = anycastd(&config, &["history", "-v", "ntp"]);
                panic!("no {outcome:?} for {event}: {found}\n{verbose}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // While BIRD is stopped, a withdrawal is taken out of the include file and fails, retried
    // (a pass that read BIRD just before it stopped may fail once saying the file still
    // holds the route; the retry takes it out).
    let left_out = "leaves it out, so a BIRD that starts does not announce it (retrying)";

    // Given BIRD stopped, a failing check's withdrawal fails until BIRD runs again, and then
    // reads back as already so or is applied (as the first pass finds BIRD): either way,
    // plain history says it failed first, how often and why.
    let retried = "failed attempt(s) before (the last: ";
    let final_outcome =
        |line: &str| line.contains("; BIRD already so ") || line.contains("; BIRD applied ");
    tb.bird_ctl("stop-bird");
    std::fs::write(d.join("ntp.down"), "").unwrap();
    let failing = "healthy -> unhealthy: withdraw 198.51.100.123/32";
    line_of(failing, left_out);
    tb.bird_ctl("start-bird");
    let line = line_of(failing, retried);
    assert!(
        final_outcome(&line)
            && line.contains(" ms after the deciding poll, ")
            && line.contains(&not_running),
        "{line}"
    );

    // The same for a drain while BIRD is stopped, which exits 70 as nothing confirms it.
    std::fs::remove_file(d.join("ntp.down")).unwrap();
    tb.wait_peer(&NTP_ONLY);
    tb.bird_ctl("stop-bird");
    let (code, out) = anycastd(
        &config,
        &["drain", "ntp", "--reason", "walk", "--wait", "2s"],
    );
    assert_eq!(code, 70, "{out}");
    let drained = ": walk): withdraw 198.51.100.123/32";
    line_of(drained, left_out);
    tb.bird_ctl("start-bird");
    let line = line_of(drained, retried);
    assert!(
        (line.contains("; BIRD already so in ") || line.contains("; BIRD applied in "))
            && line.contains(&not_running),
        "{line}"
    );

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
}

/// The `bird.conf` the documentation gives (docs/backends.md, "What BIRD needs", linked from
/// the README): the first ```` ```conf ```` block after its marker.
fn readme_bird_conf() -> String {
    support::docs::conf_block_after(
        "backends.md",
        "<!-- bird.conf: tests/bird.rs extracts the next conf block and runs BIRD with it -->",
    )
}

/// The documented `bird.conf` as written, but for the include directory (the testbed's, not
/// /run/anycastd; its addresses are the testbed's), in `d`, checked with `bird -p`.
fn documented_bird_conf(tb: &Testbed, d: &Path) -> PathBuf {
    let text = readme_bird_conf();
    assert_eq!(text.matches("/run/anycast[d]/").count(), 2, "{text}");
    let include = tb.bird_include_dir().display().to_string();
    let include = format!(
        "{}[{}]/",
        &include[..include.len() - 1],
        &include[include.len() - 1..]
    );
    let conf = d.join("bird.conf");
    std::fs::write(&conf, text.replace("/run/anycast[d]/", &include)).unwrap();
    let parse = Command::new("bird")
        .arg("-p")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        parse.status.success(),
        "bird -p: {}{}",
        String::from_utf8_lossy(&parse.stdout),
        String::from_utf8_lossy(&parse.stderr)
    );
    conf
}

#[test]
fn the_readmes_bird_conf_parses_starts_and_brings_anycastds_routes_to_the_peer() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = documented_bird_conf(&tb, d);

    // A directory beside the include directory, whose name starts the same (a leftover, or
    // another instance's): the documented include line must not load it (`[d]`, where a `*`
    // would; the exact route sets below would then hold 198.51.100.7 too).
    let stray = tb.dir.join("run-anycastd-old");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(
        stray.join("bird-anycastd4.conf"),
        "route 198.51.100.7/32 blackhole;\n",
    )
    .unwrap();

    // The testbed's BIRD makes way for one running the README's file, with BGP's default
    // timers.
    tb.bird_ctl("stop-bird");
    let started = Instant::now();
    tb.start_bird_with(&conf);
    let socket = tb.bird_socket().display().to_string();
    let services = format!(
        "[services.ntp]\nprefixes.bird = [\n    {{ prefix = \"198.51.100.123\", socket = \"{socket}\" }},\n    {{ prefix = \"2001:db8:b::123\", socket = \"{socket}\" }},\n]\nchecks.exec = [{}]\n",
        flag_check(d, "ntp")
    );
    let config = config(d, &tb, "", &services);
    let mut daemon = Daemon::start(&config, &d.join("log"));
    wait_until("anycastd's routes in BIRD", || {
        tb.bird_routes("anycastd4") == set(&["198.51.100.123/32"])
            && tb.bird_routes("anycastd6") == set(&["2001:db8:b::123/128"])
    });
    let in_bird_ms = started.elapsed().as_millis();
    let mut peer_ms = [None, None];
    let deadline = Instant::now() + Duration::from_secs(60);
    while peer_ms.iter().any(Option::is_none) {
        let routes = tb.peer_routes();
        for (i, route) in ["bird:198.51.100.123/32", "bird:2001:db8:b::123/128"]
            .iter()
            .enumerate()
        {
            if peer_ms[i].is_none() && routes.contains(*route) {
                peer_ms[i] = Some(started.elapsed().as_millis());
            }
        }
        assert!(
            Instant::now() < deadline,
            "the peer has {routes:?} after 60 s; BIRD: {}",
            tb.birdc(&["show", "protocols"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "MEASURED: the README's bird.conf, BIRD started: anycastd's routes in BIRD after {in_bird_ms} ms, at the peer after {:?} ms (IPv4, IPv6)",
        peer_ms
    );

    // A restart of that BIRD: the routes are in BIRD at once, at the peer when the sessions
    // are up again.
    tb.bird_ctl("stop-bird");
    let restarted = Instant::now();
    tb.start_bird_with(&conf);
    let in_bird_ms = restarted.elapsed().as_millis();
    assert_eq!(tb.bird_routes("anycastd4"), set(&["198.51.100.123/32"]));
    assert_eq!(tb.bird_routes("anycastd6"), set(&["2001:db8:b::123/128"]));
    wait_until("the peer after the restart", || {
        tb.peer_routes().contains("bird:198.51.100.123/32")
    });
    let v4_ms = restarted.elapsed().as_millis();
    tb.wait_peer(&["bird:198.51.100.123/32", "bird:2001:db8:b::123/128"]);
    eprintln!(
        "MEASURED: the README's bird.conf, BIRD restarted: in BIRD when it answered ({in_bird_ms} ms), at the peer after {v4_ms} ms (IPv4), {} ms (both)",
        restarted.elapsed().as_millis()
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
}

/// Announce (`Some`: with those attributes) or withdraw the prefixes of `keys` through
/// `bird`, one batch per protocol as the writer cuts them; what BIRD has after.
async fn bird_apply(
    bird: &Bird,
    keys: &[(Place, ipnet::IpNet)],
    attributes: Option<&Attributes>,
) -> anycastd::routing::bird::BirdState {
    let installed = bird.read().await.unwrap();
    let changes: Vec<Change> = keys
        .iter()
        .map(|(place, prefix)| Change {
            place: place.clone(),
            prefix: *prefix,
            announce: attributes.is_some(),
            attributes: attributes.cloned().unwrap_or_default(),
        })
        .collect();
    for batch in bird.batches(&installed, &changes) {
        bird.apply(&installed, &changes[batch], &[]).await.unwrap();
    }
    bird.read().await.unwrap()
}

#[test]
fn graded_attributes_reach_the_peer_and_changing_them_withdraws_nothing() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // BIRD with the documented bird.conf: its export filters carry the MED to the EBGP peer
    // (BIRD 2.0.12 sends one only if set in the export filter).
    let conf = documented_bird_conf(&tb, d);
    tb.bird_ctl("stop-bird");
    tb.start_bird_with(&conf);
    let bird = Bird::new(
        &BackendId::bird(tb.bird_socket()),
        &anycastd::routing::bird::Settings {
            include_dir: tb.bird_include_dir(),
            timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = [
        (
            Place::named("anycastd4"),
            "198.51.100.53/32".parse().unwrap(),
        ),
        (
            Place::named("anycastd6"),
            "2001:db8:b::53/128".parse().unwrap(),
        ),
    ];
    // (the peer's neighbour, afi, prefix) of each.
    let at_peer = [
        ("192.0.2.9", "ipv4", "198.51.100.53/32"),
        ("2001:db8:ffff:3::1", "ipv6", "2001:db8:b::53/128"),
    ];
    let wait_peer_paths = |want: &PeerPath| {
        wait_until(&format!("{want:?} at the peer"), || {
            at_peer
                .iter()
                .all(|(n, afi, p)| peer_path(&tb, n, afi, p).as_ref() == Some(want))
        })
    };
    let check = |installed: &anycastd::routing::bird::BirdState, wanted: &Attributes| {
        for (place, prefix) in &keys {
            assert!(installed.contains(place, prefix));
            assert_eq!(&installed.attributes(place, prefix), wanted, "{prefix}");
        }
        let shown = rt.block_on(bird.inspect(&keys)).unwrap();
        for s in shown {
            assert_eq!(s.advertised.as_ref(), Some(wanted));
            assert_eq!(s.established_peers, 1);
        }
    };
    let plain_at_peer = PeerPath::plain(65538);

    let installed = rt.block_on(bird_apply(&bird, &keys, Some(&Attributes::plain())));
    // (BGP's default timers: the sessions may take a while to come up.)
    let deadline = Instant::now() + Duration::from_secs(90);
    while !established(&tb, &["192.0.2.9", "2001:db8:ffff:3::1"]) {
        assert!(Instant::now() < deadline, "the sessions to the peer");
        std::thread::sleep(Duration::from_millis(100));
    }
    tb.wait_peer(&["bird:198.51.100.53/32", "bird:2001:db8:b::53/128"]);
    wait_peer_paths(&plain_at_peer);
    check(&installed, &Attributes::plain());

    // From here on the peer must never see a withdrawal until the last step.
    let monitor = Monitor::start(&tb, d);
    let deprefer = Attributes {
        as_path_prepend: 3,
        med: Some(1000),
        communities: vec![Community(65000, 666)],
        large_communities: vec![LargeCommunity(65000, 1, 666)],
    };
    let started = Instant::now();
    let installed = rt.block_on(bird_apply(&bird, &keys, Some(&deprefer)));
    let applied_ms = started.elapsed().as_millis();
    let text = std::fs::read_to_string(tb.bird_include_dir().join("bird-anycastd4.conf")).unwrap();
    assert!(
        text.contains("route 198.51.100.53/32 blackhole { bgp_path.prepend(65538); bgp_path.prepend(65538); bgp_path.prepend(65538); bgp_med = 1000; bgp_community.add((65000,666)); bgp_large_community.add((65000,1,666)); };"),
        "{text}"
    );
    // What BIRD reads back gives the same file again: an idle pass leaves it alone.
    let routes: BTreeMap<ipnet::IpNet, RouteOptions> = installed.statics["anycastd4"]
        .1
        .iter()
        .map(|net| {
            let options = installed.options.get(&("anycastd4".to_owned(), *net));
            (*net, options.cloned().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        anycastd::routing::bird::file_text("anycastd4", &tb.bird_socket(), &routes),
        text
    );
    // Prepended 3 times: the EBGP session adds the local AS once more.
    wait_peer_paths(&PeerPath::expected(65538, &deprefer));
    eprintln!(
        "MEASURED: BIRD plain -> de-preferred: applied and read back in {applied_ms} ms, at the peer (adj-in polled) after {} ms",
        started.elapsed().as_millis()
    );
    check(&installed, &deprefer);

    // Another route of the same protocol comes and goes: the file is written again, and the
    // de-preferred route stays as it is.
    let other = [(
        Place::named("anycastd4"),
        "198.51.100.54/32".parse().unwrap(),
    )];
    let installed = rt.block_on(bird_apply(&bird, &other, Some(&Attributes::plain())));
    tb.wait_peer(&[
        "bird:198.51.100.53/32",
        "bird:198.51.100.54/32",
        "bird:2001:db8:b::53/128",
    ]);
    let installed_too = rt.block_on(bird_apply(&bird, &other, None));
    tb.wait_peer(&["bird:198.51.100.53/32", "bird:2001:db8:b::53/128"]);
    for state in [&installed, &installed_too] {
        assert_eq!(
            state.attributes(&keys[0].0, &keys[0].1),
            deprefer,
            "{state:?}"
        );
    }
    wait_peer_paths(&PeerPath::expected(65538, &deprefer));

    let installed = rt.block_on(bird_apply(&bird, &keys, Some(&Attributes::plain())));
    wait_peer_paths(&plain_at_peer);
    check(&installed, &Attributes::plain());

    // A graceful drain: the de-preferred route with 65535:0.
    let drain = deprefer.clone().with(GRACEFUL_SHUTDOWN);
    let installed = rt.block_on(bird_apply(&bird, &keys, Some(&drain)));
    wait_peer_paths(&PeerPath::expected(65538, &drain));
    check(&installed, &drain);
    std::thread::sleep(Duration::from_secs(1));
    let seen = monitor.events();
    // (Only the route that came and went was withdrawn.)
    assert_eq!(monitor.withdrawals(), ["198.51.100.54/32"], "{seen:?}");
    for (_, _, prefix) in at_peer {
        assert!(
            seen.iter().filter(|(p, _)| p == prefix).count() >= 3,
            "the monitor saw each change as an update: {seen:?}"
        );
        // The updates carried the levels whole, the last one the drain's 65535:0.
        let paths = monitor.announcements_of(prefix);
        let levels = [&plain_at_peer, &PeerPath::expected(65538, &deprefer)];
        let drained = PeerPath::expected(65538, &drain);
        assert_eq!(paths.last(), Some(&drained), "{prefix}: {paths:?}");
        assert!(
            paths.iter().all(|p| levels.contains(&p) || *p == drained),
            "{prefix}: {paths:?}"
        );
    }

    // A withdrawal still withdraws.
    let installed = rt.block_on(bird_apply(&bird, &keys, None));
    tb.wait_peer(&[]);
    assert!(installed.options.is_empty(), "{installed:?}");
    wait_until("both withdrawals at the monitor", || {
        monitor.withdrawals() == ["198.51.100.53/32", "198.51.100.54/32", "2001:db8:b::53/128"]
    });
}

/// BIRD restarted while a route is de-preferred: it reads anycastd's include file at its
/// start, filter block and all, so the peer gets the de-preferred route back (never the plain
/// one), and what anycastd reads back of BIRD is the de-preferred route, nothing to repair.
#[test]
fn a_de_preferred_route_comes_back_de_preferred_after_a_bird_restart() {
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bird = Bird::new(
        &BackendId::bird(tb.bird_socket()),
        &anycastd::routing::bird::Settings {
            include_dir: tb.bird_include_dir(),
            timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = [(
        Place::named("anycastd4"),
        "198.51.100.53/32".parse().unwrap(),
    )];
    let prefix = "198.51.100.53/32";
    let deprefer = Attributes {
        as_path_prepend: 3,
        med: Some(1000),
        communities: vec![Community(65000, 666)],
        large_communities: vec![LargeCommunity(65000, 1, 666)],
    };
    // The testbed's bird.conf exports without setting the MED: BIRD 2.0.12 then sends none to
    // the EBGP peer (the README's bird.conf sets it; see the graded test above).
    let expected = PeerPath::expected(
        65538,
        &Attributes {
            med: None,
            ..deprefer.clone()
        },
    );
    rt.block_on(bird_apply(&bird, &keys, Some(&deprefer)));
    wait_until("the de-preferred route at the peer", || {
        peer_path(&tb, "192.0.2.9", "ipv4", prefix).as_ref() == Some(&expected)
    });

    let monitor = Monitor::start(&tb, dir.path());
    tb.bird_ctl("restart-bird");
    let installed = rt.block_on(bird.read()).unwrap();
    assert_eq!(installed.attributes(&keys[0].0, &keys[0].1), deprefer);
    wait_until("the de-preferred route at the peer again", || {
        !monitor.announcements_of(prefix).is_empty()
            && peer_path(&tb, "192.0.2.9", "ipv4", prefix).as_ref() == Some(&expected)
    });
    let seen = monitor.announcements_of(prefix);
    for path in &seen {
        assert_eq!(path, &expected, "{seen:?}");
    }
}
