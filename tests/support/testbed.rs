//! The real-FRR fixture: `tests/testbed/testbed.sh` brought up under a unique name, taken down
//! on drop, plus queries of what FRR has configured and what the BGP peer received.
//!
//! Tests that need it call [`Testbed::up`], which returns `None` (after printing why) when the
//! machine lacks root or the packages, so `cargo test` as a normal user still passes; the skip
//! is recorded (see `support::skip`), and with `ANYCASTD_TEST_REQUIRE_ALL=1` (set by
//! `scripts/test --all` and `.ci/run`) a missing prerequisite is a failure instead.
//! Testbeds in one test binary are serialised by a lock (FRR tests run one at a time).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Which BGP peer runs in the peer namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// gobgpd.
    Gobgp,
    /// BIRD 2 (recovers fast after bgpd restarts).
    Bird,
}

/// The BGP sessions of the testbed: (label, FRR address as seen by the peer, afi, bird name).
pub const SESSIONS: [(&str, &str, &str, &str); 4] = [
    ("default", "192.0.2.1", "ipv4", "r1_v4"),
    ("default", "2001:db8:ffff:1::1", "ipv6", "r1_v6"),
    ("123", "192.0.2.5", "ipv4", "vrf_v4"),
    ("123", "2001:db8:ffff:2::1", "ipv6", "vrf_v6"),
];

/// The BGP sessions of the local BIRD (with [`Testbed::up_with_bird`]): (label, BIRD's address
/// as seen by the peer, afi).
pub const BIRD_SESSIONS: [(&str, &str, &str); 2] = [
    ("bird", "192.0.2.9", "ipv4"),
    ("bird", "2001:db8:ffff:3::1", "ipv6"),
];

/// The BGP sessions of the local gobgpd (with [`Testbed::up_with_gobgp`]): (label, its address
/// as seen by the peer, afi).
pub const GOBGP_SESSIONS: [(&str, &str, &str); 2] = [
    ("gobgp", "192.0.2.13", "ipv4"),
    ("gobgp", "2001:db8:ffff:4::1", "ipv6"),
];

/// A running testbed.
pub struct Testbed {
    /// Namespace prefix.
    pub name: String,
    /// State directory.
    pub dir: PathBuf,
    /// The peer.
    pub peer: Peer,
    /// Whether a local BIRD speaker runs too.
    pub bird: bool,
    /// Whether a local gobgpd speaker runs too.
    pub gobgp: bool,
    _serial: MutexGuard<'static, ()>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/testbed.sh")
}

/// Why this machine cannot run the FRR tests, if it cannot.
pub fn missing_prerequisite(peer: Peer) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root (network namespaces and FRR need root)".into());
    }
    let mut missing = Vec::new();
    if !Path::new("/usr/lib/frr/bgpd").exists() || !Path::new("/usr/bin/vtysh").exists() {
        missing.push("frr");
    }
    match peer {
        Peer::Gobgp if which("gobgpd").is_none() => missing.push("gobgpd"),
        Peer::Bird if which("bird").is_none() => missing.push("bird2"),
        _ => {}
    }
    (!missing.is_empty()).then(|| {
        format!(
            "packages missing: {} (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        )
    })
}

fn which(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(binary))
            .find(|p| p.exists())
    })
}

impl Testbed {
    /// Bring a testbed up, or explain why not and return `None`.
    pub fn up(peer: Peer) -> Option<Testbed> {
        Self::up_with(peer, false, false)
    }

    /// A testbed with a local BIRD 2 speaker beside FRR (peer: gobgpd), for the BIRD backend.
    pub fn up_with_bird() -> Option<Testbed> {
        Self::up_with(Peer::Gobgp, true, false)
    }

    /// A testbed with a local gobgpd speaker beside FRR (peer: gobgpd), for the GoBGP
    /// backend: its API is at 127.0.0.1:50051 inside the namespace [`Testbed::gobgp_netns`],
    /// where anycastd must run to reach it.
    pub fn up_with_gobgp() -> Option<Testbed> {
        Self::up_with(Peer::Gobgp, false, true)
    }

    fn up_with(peer: Peer, bird: bool, gobgp: bool) -> Option<Testbed> {
        let missing = missing_prerequisite(peer).or_else(|| {
            (bird && which("bird").is_none())
                .then(|| "packages missing: bird2 (apt-get install bird2)".to_owned())
        });
        if let Some(reason) = missing {
            super::skip::skip(&format!("real-FRR test: {reason}"));
            return None;
        }
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let name = format!("acd{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let testbed = Testbed {
            name,
            dir,
            peer,
            bird,
            gobgp,
            _serial: serial,
        };
        let out = testbed
            .script_cmd()
            .arg("up")
            .output()
            .expect("run testbed.sh");
        assert!(
            out.status.success(),
            "testbed up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(testbed)
    }

    fn script_cmd(&self) -> Command {
        let mut cmd = Command::new(script());
        cmd.env("TB_BIRD", if self.bird { "1" } else { "0" });
        cmd.env("TB_GOBGP", if self.gobgp { "1" } else { "0" });
        cmd.env("TB_NAME", &self.name).env("TB_DIR", &self.dir).env(
            "TB_PEER",
            match self.peer {
                Peer::Gobgp => "gobgp",
                Peer::Bird => "bird",
            },
        );
        cmd
    }

    /// The arguments that point vtysh at this testbed's FRR.
    pub fn vtysh_args(&self) -> Vec<String> {
        vec![
            "--vty_socket".into(),
            self.dir.join("frr/run").display().to_string(),
            "--config_dir".into(),
            self.dir.join("frr/etc").display().to_string(),
        ]
    }

    /// Run vtysh against this testbed; returns stdout.
    pub fn vtysh(&self, lines: &[&str]) -> String {
        let mut cmd = Command::new("/usr/bin/vtysh");
        cmd.args(self.vtysh_args());
        for line in lines {
            cmd.arg("-c").arg(line);
        }
        let out = cmd.output().expect("run vtysh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `network` statements in FRR's running config as `vrf:prefix` (`default:` for none),
    /// and the `router bgp` lines.
    pub fn networks(&self) -> (BTreeSet<String>, Vec<String>) {
        let text = self.vtysh(&["show running-config bgpd"]);
        let mut nets = BTreeSet::new();
        let mut routers = Vec::new();
        let mut vrf = String::from("default");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("router bgp ") {
                routers.push(line.to_owned());
                vrf = rest
                    .split_whitespace()
                    .nth(2)
                    .unwrap_or("default")
                    .to_owned();
            } else if let Some(net) = line.trim().strip_prefix("network ") {
                nets.insert(format!(
                    "{vrf}:{}",
                    net.split_whitespace().next().unwrap_or("")
                ));
            }
        }
        (nets, routers)
    }

    /// Routes the peer received, as `vrf:prefix` over the four sessions.
    pub fn peer_routes(&self) -> BTreeSet<String> {
        let mut routes = BTreeSet::new();
        for (label, neighbor, afi, bird_name) in SESSIONS {
            let prefixes: Vec<String> = match self.peer {
                Peer::Gobgp => self.adj_in(neighbor, afi),
                Peer::Bird => {
                    let out = Command::new("birdc")
                        .args([
                            "-s",
                            &self.dir.join("peer/bird.ctl").display().to_string(),
                            "show",
                            "route",
                            "protocol",
                            bird_name,
                        ])
                        .output()
                        .expect("run birdc");
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .filter_map(|l| l.split_whitespace().next())
                        .filter(|w| w.parse::<ipnet::IpNet>().is_ok())
                        .map(str::to_owned)
                        .collect()
                }
            };
            routes.extend(prefixes.into_iter().map(|p| format!("{label}:{p}")));
        }
        if self.bird {
            for (label, neighbor, afi) in BIRD_SESSIONS {
                routes.extend(
                    self.adj_in(neighbor, afi)
                        .into_iter()
                        .map(|p| format!("{label}:{p}")),
                );
            }
        }
        if self.gobgp {
            for (label, neighbor, afi) in GOBGP_SESSIONS {
                routes.extend(
                    self.adj_in(neighbor, afi)
                        .into_iter()
                        .map(|p| format!("{label}:{p}")),
                );
            }
        }
        routes
    }

    /// The prefixes gobgpd holds from `neighbor` in `afi`.
    fn adj_in(&self, neighbor: &str, afi: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{}-peer", self.name),
                "gobgp",
                "neighbor",
                neighbor,
                "adj-in",
                "-a",
                afi,
                "-j",
            ])
            .output()
            .expect("run gobgp");
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        json.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The local BIRD's control socket.
    pub fn bird_socket(&self) -> PathBuf {
        self.dir.join("bird/bird.ctl")
    }

    /// Where the local BIRD includes anycastd's files from (`[bird] include_dir`).
    pub fn bird_include_dir(&self) -> PathBuf {
        self.dir.join("run-anycastd")
    }

    /// Run birdc against the local BIRD; returns stdout.
    pub fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.bird_socket())
            .args(args)
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The routes the local BIRD has in its static protocol `protocol`.
    pub fn bird_routes(&self, protocol: &str) -> BTreeSet<String> {
        self.birdc(&["show", "route", "protocol", protocol])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.parse::<ipnet::IpNet>().is_ok())
            .map(str::to_owned)
            .collect()
    }

    /// Stop, start or restart the local BIRD (`stop-bird`, `start-bird`, `restart-bird`).
    pub fn bird_ctl(&self, what: &str) {
        let out = self.script_cmd().arg(what).output().expect("testbed bird");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start the local BIRD (stopped before) with the configuration file `conf` instead of
    /// the testbed's, in its namespace and at its control socket.
    pub fn start_bird_with(&self, conf: &Path) {
        let out = self
            .script_cmd()
            .arg("start-bird")
            .arg(conf)
            .output()
            .expect("testbed bird");
        assert!(
            out.status.success(),
            "start-bird {}: {}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The namespace of the local gobgpd (its API: 127.0.0.1:50051 there).
    pub fn gobgp_netns(&self) -> String {
        format!("{}-g1", self.name)
    }

    /// Run the `gobgp` CLI against the local gobgpd; returns stdout.
    pub fn gobgp(&self, args: &[&str]) -> String {
        let out = self
            .script_cmd()
            .arg("gobgp")
            .args(args)
            .output()
            .expect("run gobgp");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stop, start or restart the local gobgpd (`stop-gobgp`, `start-gobgp`,
    /// `restart-gobgp`); `conf`: start it with this configuration instead of the testbed's.
    pub fn gobgp_ctl(&self, what: &str, conf: Option<&Path>) {
        let mut cmd = self.script_cmd();
        cmd.arg(what);
        if let Some(conf) = conf {
            cmd.arg(conf);
        }
        let out = cmd.output().expect("testbed gobgp");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The local gobgpd's configuration file.
    pub fn gobgp_conf(&self) -> PathBuf {
        self.dir.join("gobgp/gobgpd.toml")
    }

    /// Wait (generously) until the peer's routes equal `expected`; panics with both on timeout.
    pub fn wait_peer(&self, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let routes = self.peer_routes();
            if routes == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "peer routes {routes:?}, expected {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Restart bgpd (runtime config lost); with `boot`, re-apply frr.conf as watchfrr does.
    pub fn restart_bgpd(&self, boot: bool) {
        let mut cmd = self.script_cmd();
        cmd.arg("restart-bgpd");
        if boot {
            cmd.arg("--boot");
        }
        let out = cmd.output().expect("restart bgpd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop bgpd (it stays down).
    pub fn stop_bgpd(&self) {
        let out = self
            .script_cmd()
            .arg("stop-bgpd")
            .output()
            .expect("stop bgpd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start bgpd again; with `boot`, apply the saved frr.conf as watchfrr does.
    pub fn start_bgpd(&self, boot: bool) {
        let mut cmd = self.script_cmd();
        cmd.arg("start-bgpd");
        if boot {
            cmd.arg("--boot");
        }
        let out = cmd.output().expect("start bgpd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Wait until all BGP sessions are Established again.
    pub fn wait_established(&self) {
        let out = self
            .script_cmd()
            .arg("wait")
            .output()
            .expect("testbed wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.script_cmd().arg("down").output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The README example's routes as the peer sees them.
pub const ALL_FOUR: [&str; 4] = [
    "default:203.0.113.53/32",
    "default:2001:db8::b19:bad:53/128",
    "123:203.0.113.123/32",
    "123:2001:db8::123:7e11:713e/128",
];

/// Only ntp's routes.
pub const NTP_ONLY: [&str; 2] = ["123:203.0.113.123/32", "123:2001:db8::123:7e11:713e/128"];
