//! systemd integration: the shipped unit verifies with systemd-analyze, and a daemon started
//! under a NOTIFY_SOCKET says READY=1 only after its start-up reconciliation is journaled,
//! then STATUS= as services change, and WATCHDOG=1 when asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cabourotte::{Behaviour, Emulator, Generation};
use support::daemon::{one_service_config, Daemon, OneService};

#[test]
fn the_shipped_unit_file_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        support::skip::skip("systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/anycastd.service"),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "KillMode=mixed",
        "ExecReload=/usr/local/bin/anycastd reload",
        "ExecStartPre=/usr/local/bin/anycastd check-config",
        "StateDirectory=anycastd",
        "After=network-online.target frr.service",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anycastd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/anycastd", env!("CARGO_BIN_EXE_anycastd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn recv(socket: &UnixDatagram, deadline: Instant) -> Option<String> {
    let mut buf = [0u8; 4096];
    socket
        .set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
    socket
        .recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_comes_after_reconciliation_then_status_and_watchdog_follow_the_services() {
    let emulator = Emulator::start(Generation::V2).await;
    emulator.set("dns", Behaviour::Pass);
    let dir = tempfile::tempdir().unwrap();
    let config = one_service_config(
        dir.path(),
        &format!(
            r#"[{{ name = "dns", url = "{}", interval = "100ms" }}]"#,
            emulator.url()
        ),
        OneService::default(),
    );
    let notify_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    let mut daemon = Daemon::start_with_env(
        &config,
        &dir.path().join("log"),
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = recv(&socket, deadline).expect("a notification");
    assert!(ready.starts_with("READY=1\nSTATUS="), "{ready}");
    // READY=1 came after the reconciliation was journaled.
    let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
        .args(["history", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"kind\":\"reconciled\""));

    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.contains("STATUS=1 healthy, 0 unhealthy, 0 drained"))
    {
        seen.push(recv(&socket, deadline).unwrap_or_else(|| panic!("{seen:?}")));
    }
    emulator.set("dns", Behaviour::Status(500));
    while !seen
        .iter()
        .any(|m| m.contains("STATUS=0 healthy, 1 unhealthy, 0 drained"))
    {
        seen.push(recv(&socket, deadline).unwrap_or_else(|| panic!("{seen:?}")));
    }
    assert!(seen.iter().any(|m| m == "WATCHDOG=1"), "{seen:?}");
    daemon.signal(Signal::SIGTERM);
    while !seen.iter().any(|m| m.starts_with("STOPPING=1")) {
        seen.push(recv(&socket, deadline).unwrap_or_else(|| panic!("{seen:?}")));
    }
    assert_eq!(daemon.wait(Duration::from_secs(30)), 0);
}

/// The packaged unit (`dist/debian/unit.sh`: the unit `dist/debian/build.sh` ships).
fn packaged_unit() -> String {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/debian/unit.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the unit's `key=` line.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the packaged unit:\n{unit}"))
        .to_owned()
}

/// `CAP_SYS_ADMIN CAP_SETUID` as setpriv writes it: `+sys_admin,+setuid`.
fn setpriv_caps(list: &str) -> String {
    list.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `anycastd ARGS -c CONFIG` run by setpriv as user `nobody` (the packaged unit's user is
/// `anycastd`, made by the package; `nobody` stands in: a user with no capability of its own)
/// with the bounding set `bounding` and the ambient set `ambient` (setpriv's `+name` lists).
fn as_unit_user(bounding: &str, ambient: &str, args: &[&str], config: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
    if !ambient.is_empty() {
        command.arg(format!("--inh-caps={ambient}"));
        command.arg(format!("--ambient-caps={ambient}"));
    }
    command
        .arg(format!("--bounding-set=-all,{bounding}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_anycastd"))
        .args(args)
        .arg("-c")
        .arg(config);
    command
}

#[test]
fn under_the_packaged_units_user_and_capabilities_vrf_and_user_exec_checks_pass() {
    if !nix::unistd::Uid::effective().is_root() {
        support::skip::skip("needs root to run the daemon as another user in a namespace");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        support::skip::skip("setpriv is missing (apt-get install util-linux)");
        return;
    }
    // Given the packaged unit's settings.
    let unit = packaged_unit();
    assert_eq!(unit_value(&unit, "User"), "anycastd");
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "yes");
    let restrict = unit_value(&unit, "RestrictNamespaces");
    assert!(
        restrict.split_whitespace().any(|n| n == "net") || restrict == "no",
        "RestrictNamespaces={restrict} forbids setns(2) into a network namespace"
    );
    let bounding = setpriv_caps(&unit_value(&unit, "CapabilityBoundingSet"));
    let ambient = setpriv_caps(&unit_value(&unit, "AmbientCapabilities"));

    // A VRF (a network namespace with an address of its own), and a config with a check in it,
    // an exec check as another user, and one that fails if the checks inherit a capability.
    let ns = format!("acdcap{}", std::process::id());
    let _ns = Netns(ns.clone());
    for args in [
        vec!["netns", "add", &ns],
        vec!["-n", &ns, "link", "set", "lo", "up"],
        vec!["-n", &ns, "addr", "add", "10.79.0.1/32", "dev", "lo"],
    ] {
        assert!(Command::new("ip").args(&args).status().unwrap().success());
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(&state, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let daemon_user = nix::unistd::User::from_name("daemon").unwrap().unwrap();
    let vtysh = dir.path().join("vtysh");
    std::fs::write(&vtysh, "#!/bin/sh\necho '!'\n").unwrap();
    std::fs::set_permissions(&vtysh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[journal]
path = {journal:?}
[control]
socket = {socket:?}
[services.dns]
prefixes.frrouting = [{{ prefix = "203.0.113.53", vtysh = {vtysh:?} }}]
checks.exec = [
  {{ name = "in-vrf", command = "/bin/sh", args = ["-c", "ip -o addr show dev lo | grep -q 10.79.0.1 || {{ echo not in the VRF >&2; exit 1; }}"], vrf = "{ns}", interval = "200ms" }},
  {{ name = "as-daemon", command = "/bin/sh", args = ["-c", "test $(id -u) = {uid} || {{ id >&2; exit 1; }}"], user = "daemon", interval = "200ms" }},
  {{ name = "no-caps", command = "/bin/sh", args = ["-c", "grep -E '^Cap(Eff|Amb)' /proc/self/status | grep -qv '\\s0\\+$' && {{ grep ^Cap /proc/self/status | tr '\\n' ' ' >&2; exit 1; }}; exit 0"], interval = "200ms" }},
]
"#,
            journal = state.join("journal").display().to_string(),
            socket = state.join("anycastd.sock").display().to_string(),
            vtysh = vtysh.display().to_string(),
            uid = daemon_user.uid,
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Without the capabilities the unit grants, check-config names each check and the setting.
    let out = as_unit_user(&bounding, "", &["check-config"], &config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: service \"dns\": check \"in-vrf\" runs in VRF {ns}: entering its network namespace needs CAP_SYS_ADMIN, which this process lacks (its systemd unit must have CAP_SYS_ADMIN in CapabilityBoundingSet= and, with User=, in AmbientCapabilities=; see dist/anycastd.service), and RestrictNamespaces= must allow net\n"))
            && stderr.contains("warning: service \"dns\": check \"as-daemon\" runs as user \"daemon\": switching to it needs CAP_SETUID and CAP_SETGID, which this process lacks (its systemd unit must have CAP_SETUID and CAP_SETGID in CapabilityBoundingSet= and, with User=, in AmbientCapabilities=; see dist/anycastd.service)\n"),
        "{stderr}"
    );
    // With them, it has nothing to say.
    let out = as_unit_user(&bounding, &ambient, &["check-config"], &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // When the daemon runs as the unit runs it, every check passes.
    let (dns, log) = run_until(
        &as_unit_user(&bounding, &ambient, &["run"], &config),
        &config,
        |dns| dns["state"] == "healthy",
    );
    let checks = dns["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{dns}");
    assert!(checks.iter().all(|c| c["result"] == "pass"), "{dns}");
    assert!(!log.contains("which this process lacks"), "{log}");

    // Without the ambient set (the unit as it was), the VRF check fails as the issue saw it,
    // the check as another user says it is the user switch that failed, not /bin/sh, and the
    // daemon said at start which checks would.
    let (dns, log) = run_until(
        &as_unit_user(&bounding, "", &["run"], &config),
        &config,
        |dns| dns["checks"][0]["result"] == "fail" && dns["checks"][1]["result"] == "fail",
    );
    let reason = dns["checks"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot enter the namespace: EPERM"),
        "{dns}"
    );
    assert_eq!(
        dns["checks"][1]["reason"],
        "cannot run /bin/sh as user daemon: Operation not permitted (switching user needs \
         CAP_SETUID and CAP_SETGID)",
        "{dns}"
    );
    let warning = format!("service \\\"dns\\\": check \\\"in-vrf\\\" runs in VRF {ns}: entering its network namespace needs CAP_SYS_ADMIN, which this process lacks");
    assert!(log.contains(&warning), "{log}");

    // A reload that adds the check says so too.
    let full = std::fs::read_to_string(&config).unwrap();
    let without_vrf: String = full
        .lines()
        .filter(|l| !l.contains("\"in-vrf\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, &without_vrf).unwrap();
    let reload = || {
        let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["reload", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    };
    let (_, log) = run_until(
        &as_unit_user(&bounding, "", &["run"], &config),
        &config,
        |dns| {
            if dns["checks"].as_array().is_some_and(|c| c.len() == 2) {
                std::fs::write(&config, &full).unwrap();
                reload();
            }
            dns["checks"].as_array().is_some_and(|c| c.len() == 3)
        },
    );
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
}

/// Start `daemon` (a `run` of `config`), wait until its first service satisfies `done` (within
/// 30 s), stop it with SIGTERM, and return that service's status and the daemon's log.
fn run_until(
    daemon: &Command,
    config: &Path,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = std::fs::File::create(&path).unwrap();
    let mut child = Command::new(daemon.get_program())
        .args(daemon.get_args())
        .env("LOG_FORMAT", "json")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = serde_json::Value::Null;
    let reached = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_anycastd"))
            .args(["status", "--json", "-c"])
            .arg(config)
            .output()
            .unwrap();
        if let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            last = status["services"][0].clone();
            if done(&last) {
                break true;
            }
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
    let stopped = child.wait().unwrap();
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(reached, "not reached: {last}\n{log}");
    assert_eq!(stopped.code(), Some(0), "{log}");
    (last, log)
}
