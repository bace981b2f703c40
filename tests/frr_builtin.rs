//! The "Without Cabourotte" example of docs/configuration.md end to end: a real FRR and a real
//! BGP peer in network namespaces, dns checked by a built-in DNS check against a real
//! dnsmasq, ntp by two exec checks. Assertions are on what the peer receives, and on history
//! and status naming the check that decided.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::daemon::{testbed_sections, Daemon};
use support::servers::Dnsmasq;
use support::testbed::{Peer, Testbed, ALL_FOUR, NTP_ONLY};

const EXIT: Duration = Duration::from_secs(30);
const DNS_ONLY: [&str; 2] = [
    "default:203.0.113.53/32",
    "default:2001:db8::b19:bad:53/128",
];

/// The documented built-in example, with the testbed's vtysh, dnsmasq's port, and exec checks
/// that fail while `DIR/ntp_vN.down` exists (standing in for `ntpdate -q`).
fn config(dir: &Path, vtysh_args: &[String], dns_port: u16) -> std::path::PathBuf {
    let ntp = |v: &str| {
        format!(
            r#"{{ name = "ntp_{v}", command = "/bin/sh", args = ["-c", "if [ -e {dir}/ntp_{v}.down ]; then echo 'no server suitable for synchronization found' >&2; exit 1; fi"], interval = "200ms", timeout = "3s" }}"#,
            dir = dir.display()
        )
    };
    let text = format!(
        r#"{sections}
[services.dns]
prefixes.frrouting = ["2001:db8::b19:bad:53", "203.0.113.53"]
checks.dns = [
    {{ name = "dns", server = "127.0.0.1:{dns_port}", query = "check.local", type = "AAAA", expect = ["2001:db8::15:600d"], interval = "200ms", timeout = "1s" }},
]

[services.ntp]
prefixes.frrouting = [
    {{ prefix = "2001:db8::123:7e11:713e", vrf = "123" }},
    {{ prefix = "203.0.113.123", vrf = "123" }},
]
checks.exec = [
    {v6},
    {v4},
]
"#,
        sections = testbed_sections(dir, vtysh_args),
        v6 = ntp("v6"),
        v4 = ntp("v4"),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn client(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn built_in_checks_announce_withdraw_exactly_the_failing_service_and_recover() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let Some(dnsmasq) = Dnsmasq::start() else {
        return;
    };
    let port = dnsmasq.port;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &tb.vtysh_args(), port);
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&ALL_FOUR);

    // The resolver goes away: only dns is withdrawn.
    drop(dnsmasq);
    tb.wait_peer(&NTP_ONLY);
    let history = client(&config, &["history", "dns"]);
    assert!(
        history.contains(&format!(
            "healthy -> unhealthy: withdraw 2001:db8::b19:bad:53/128, 203.0.113.53/32 (check dns failed: 127.0.0.1:{port}: connection refused)"
        )),
        "{history}"
    );
    // It comes back on the same port.
    let dnsmasq = Dnsmasq::start_on(port).unwrap();
    tb.wait_peer(&ALL_FOUR);

    // One of ntp's commands fails: only ntp is withdrawn, and its reason is the command's.
    std::fs::write(dir.path().join("ntp_v4.down"), "").unwrap();
    tb.wait_peer(&DNS_ONLY);
    let history = client(&config, &["history", "ntp"]);
    assert!(
        history.contains(
            "(check ntp_v4 failed: exit 1: no server suitable for synchronization found)"
        ),
        "{history}"
    );
    let status = client(&config, &["status", "ntp"]);
    assert!(
        status.contains("  check ntp_v4 (exec): fail: exit 1: no server suitable for synchronization found since "),
        "{status}"
    );
    assert!(
        status.contains("  check ntp_v6 (exec): pass since "),
        "{status}"
    );
    std::fs::remove_file(dir.path().join("ntp_v4.down")).unwrap();
    tb.wait_peer(&ALL_FOUR);

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
    tb.wait_peer(&[]);
    let log = daemon.log_text();
    assert!(
        log.contains("Exec health check \\\"ntp_v4\\\" failed."),
        "{log}"
    );
    drop(dnsmasq);
}

#[test]
fn checks_in_vrf_123_reach_what_only_that_vrf_can_reach() {
    let Some(tb) = Testbed::up(Peer::Gobgp) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // FRR's VRF 123 is the namespace "<name>-vrf": name it 123 in a netns_dir of our own.
    let netns_dir = dir.path().join("netns");
    std::fs::create_dir(&netns_dir).unwrap();
    std::os::unix::fs::symlink(format!("/run/netns/{}-vrf", tb.name), netns_dir.join("123"))
        .unwrap();
    // A loopback address of the VRF's own: from the daemon's namespace the same address and
    // port have no listener (and no packet leaves the machine either way).
    let port = support::servers::free_port();
    let Some(resolver) = Dnsmasq::start_in(Some(&format!("{}-vrf", tb.name)), "127.0.0.53", port)
    else {
        return;
    };
    let text = format!(
        r#"{sections}
[checks]
netns_dir = "{netns_dir}"

[services.ntp]
prefixes.frrouting = [
    {{ prefix = "2001:db8::123:7e11:713e", vrf = "123" }},
    {{ prefix = "203.0.113.123", vrf = "123" }},
]

[services.ntp.checks]
dns = [{{ name = "resolver", server = "127.0.0.53:{port}", query = "check.local", type = "AAAA", expect = ["2001:db8::15:600d"], vrf = "123", interval = "200ms", timeout = "1s" }}]
tcp = [
    {{ name = "port", address = "127.0.0.53:{port}", vrf = "123", interval = "200ms", timeout = "1s" }},
    {{ name = "outside", address = "127.0.0.53:{port}", shadow = true, interval = "200ms", timeout = "500ms" }},
]
exec = [{{ name = "lo", command = "/bin/sh", args = ["-c", "ip -o addr show dev lo | grep -q 203.0.113.123 || {{ echo 'not in VRF 123' >&2; exit 1; }}"], vrf = "123", interval = "200ms" }}]
"#,
        sections = testbed_sections(dir.path(), &tb.vtysh_args()),
        netns_dir = netns_dir.display(),
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("log"));
    tb.wait_peer(&NTP_ONLY);
    // Every check has answered at least once (the shadow one may come last).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut status = client(&config, &["status", "ntp"]);
    while status.contains("(no result yet)") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        status = client(&config, &["status", "ntp"]);
    }
    for line in [
        "  check resolver (dns, vrf 123): pass since ",
        "  check port (tcp, vrf 123): pass since ",
        "  check lo (exec, vrf 123): pass since ",
        // The same address from the daemon's own namespace: nothing listens there.
        "  check outside (tcp, shadow): fail: cannot connect to 127.0.0.53:",
    ] {
        assert!(status.contains(line), "{line}\n{status}");
    }
    // The resolver inside the VRF goes: ntp is withdrawn for its DNS and TCP checks.
    drop(resolver);
    tb.wait_peer(&[]);
    // Withdrawn for whichever of the two asked first.
    let history = client(&config, &["history", "ntp"]);
    let by_resolver = format!("(check resolver failed: 127.0.0.53:{port}: connection refused)");
    let by_port =
        format!("(check port failed: cannot connect to 127.0.0.53:{port}: connection refused)");
    assert!(
        history.lines().any(|l| l.contains("healthy -> unhealthy")
            && (l.contains(&by_resolver) || l.contains(&by_port))),
        "{history}"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait(EXIT), 0, "{}", daemon.log_text());
}
