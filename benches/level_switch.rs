//! The cost of a level switch at 1,000 services, through the real FRR and the real BIRD of
//! the testbed (tests/testbed/testbed.sh with a local BIRD; the gobgpd peer), each driven by
//! the writer with decisions as the daemon's services make them: one `set` per service.
//!
//! ```sh
//! cargo bench --bench level_switch                          # 1,000 prefixes per daemon, 3 runs
//! cargo bench --bench level_switch -- --services 100 --runs 1
//! ```
//!
//! Needs root, frr, bird2 and gobgpd (as the real-FRR tests do); without them it says why and
//! exits 0. Per run and daemon, four phases, each started by 1,000 decisions at once (as a
//! fleet-wide failure makes them):
//! 1. announce plain (from nothing): today's cost of an announcement;
//! 2. plain -> de-preferred (as-path +3, MED 1000, a community, a large community);
//! 3. de-preferred -> plain;
//! 4. withdraw: today's cost of a withdrawal.
//!
//! Each phase reports the daemon calls (FRR: vtysh processes, those that write and their `-c`
//! lines, counted by a wrapper script that logs each call before running the real vtysh;
//! BIRD: conversations
//! with its control socket and `configure` requests among them, counted by a proxy in front
//! of the socket, and the `Reconfiguring` lines of BIRD's own log), the time from the first
//! decision until the writer reported every prefix verified by its read-back, and until the
//! peer holds every prefix with the phase's attributes (or none, after the withdrawal): the
//! peer's adj-in (`gobgp neighbor N adj-in -j`, all prefixes in one call) polled every 50 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/support/peer.rs"]
mod peer;
#[path = "../tests/support/skip.rs"]
mod skip;
#[path = "../tests/support/testbed.rs"]
mod testbed;

use anycastd::bgp::{Attributes, Community, LargeCommunity};
use anycastd::routing::bird::Bird;
use anycastd::routing::frr::{self, Frr};
use anycastd::routing::writer::{self, Decision, Notice, Outcome, PrefixKey};
use anycastd::routing::{Backend, BackendId, Place};
use peer::{peer_paths, PeerPath};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testbed::Testbed;

const HOUR: Duration = Duration::from_secs(3600);

fn deprefer() -> Attributes {
    Attributes {
        as_path_prepend: 3,
        med: Some(1000),
        communities: vec![Community(65000, 666)],
        large_communities: vec![LargeCommunity(65000, 1, 666)],
    }
}

/// One phase: its name and what every prefix is decided to (`None`: withdrawn).
fn phases() -> Vec<(&'static str, Option<Attributes>)> {
    vec![
        ("announce plain", Some(Attributes::plain())),
        ("plain -> de-preferred", Some(deprefer())),
        ("de-preferred -> plain", Some(Attributes::plain())),
        ("withdraw", None),
    ]
}

/// What one phase cost.
#[derive(Debug, Clone, Default)]
struct Figures {
    /// Daemon calls (vtysh processes; BIRD conversations).
    calls: usize,
    /// FRR: the `-c` lines of the writing calls; BIRD: `configure` requests.
    lines: usize,
    /// FRR: the writing calls (`configure terminal`); BIRD: its own `Reconfiguring` log lines.
    own: usize,
    /// First decision -> every prefix verified by the writer.
    verified: Duration,
    /// First decision -> the peer holds every prefix as decided.
    at_peer: Duration,
    /// Outcomes other than applied or already so.
    failed: usize,
}

/// How the bench counts one daemon's calls.
trait Counter {
    /// (calls, lines, the daemon's own count) so far.
    fn counts(&self) -> (usize, usize, usize);
}

/// The vtysh wrapper's log: one line per call, the number of its `-c` lines and whether it
/// writes (`configure terminal`) or only reads. Counts: (calls, lines of the writes, writes).
struct VtyshLog(PathBuf);

impl Counter for VtyshLog {
    fn counts(&self) -> (usize, usize, usize) {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        let calls = text.lines().count();
        let writes: Vec<&str> = text.lines().filter(|l| l.ends_with(" write")).collect();
        let lines = writes
            .iter()
            .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
            .sum();
        (calls, lines, writes.len())
    }
}

/// A vtysh that logs its call (the number of `-c` lines, write or read) before running the
/// real one.
fn counting_vtysh(dir: &Path) -> (PathBuf, VtyshLog) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("vtysh-calls");
    let script = dir.join("vtysh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=0; w=read\nfor a in \"$@\"; do\n  [ \"$a\" = -c ] && n=$((n+1))\n  [ \"$a\" = 'configure terminal' ] && w=write\ndone\necho \"$n $w\" >> '{}'\nexec /usr/bin/vtysh \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, VtyshLog(log))
}

/// A proxy in front of BIRD's control socket that counts conversations and `configure`
/// requests; BIRD's log file for its own count of reconfigurations.
struct BirdCount {
    conversations: Arc<Mutex<(usize, usize)>>,
    log: PathBuf,
}

impl Counter for BirdCount {
    fn counts(&self) -> (usize, usize, usize) {
        let (conversations, configures) = *self.conversations.lock().unwrap();
        let reconfiguring = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with("Reconfiguring"))
            .count();
        (conversations, configures, reconfiguring)
    }
}

fn bird_proxy(listen: &Path, bird: PathBuf, log: PathBuf) -> BirdCount {
    let _ = std::fs::remove_file(listen);
    let listener = UnixListener::bind(listen).unwrap();
    let conversations = Arc::new(Mutex::new((0, 0)));
    let counts = conversations.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = UnixStream::connect(&bird) else {
                continue;
            };
            counts.lock().unwrap().0 += 1;
            let (mut to_client, from_server) = (client.try_clone().unwrap(), server.try_clone());
            let mut from_server = from_server.unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let counts = counts.clone();
            std::thread::spawn(move || {
                let mut to_server = server;
                let mut lines = BufReader::new(client);
                let mut line = String::new();
                while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line.trim() == "configure" || line.trim().starts_with("configure ") {
                        counts.lock().unwrap().1 += 1;
                    }
                    if to_server.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    BirdCount { conversations, log }
}

/// Where the peer sees one daemon's routes.
struct AtPeer {
    neighbor: &'static str,
    afi: &'static str,
    asn: u32,
}

/// The last outcome of each prefix: its decision's sequence number, the outcome, when.
type Outcomes = HashMap<PrefixKey, (u64, Outcome, Instant)>;

/// One run of the four phases through `backend`.
fn run<B: Backend>(
    tb: &Testbed,
    backend: B,
    keys: &[PrefixKey],
    counter: &dyn Counter,
    at: &AtPeer,
) -> Vec<Figures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = rt.block_on(async { writer::spawn(backend, HOUR, tx) });
    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let seen = outcomes.clone();
    rt.spawn(async move {
        while let Some(notice) = rx.recv().await {
            if let Notice::Outcome(r) = notice {
                seen.lock()
                    .unwrap()
                    .insert(r.key, (r.decision.decision_seq, r.outcome, Instant::now()));
            }
        }
    });
    // Past the writer's start-up gathering: a burst is then gathered as in a running daemon.
    std::thread::sleep(writer::START_GATHER + Duration::from_millis(500));
    let prefixes: Vec<String> = keys.iter().map(|k| k.1.to_string()).collect();
    let mut out = Vec::new();
    for (seq, (name, attributes)) in (1u64..).zip(phases()) {
        let before = counter.counts();
        let decisions: Vec<(PrefixKey, Decision)> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let decision = Decision {
                    service: format!("s{i}"),
                    announce: attributes.is_some(),
                    attributes: attributes.clone().unwrap_or_default(),
                    decision_seq: seq,
                };
                (key.clone(), decision)
            })
            .collect();
        let wanted = attributes.as_ref().map(|a| PeerPath::expected(at.asn, a));
        let started = Instant::now();
        for item in decisions {
            handle.set(vec![item]);
        }
        let deadline = started + Duration::from_secs(300);
        let (mut verified, mut at_peer) = (None, None);
        while verified.is_none() || at_peer.is_none() {
            assert!(
                Instant::now() < deadline,
                "{name}: not done in 300 s (verified {verified:?}, at the peer {at_peer:?})"
            );
            if verified.is_none() {
                let outcomes = outcomes.lock().unwrap();
                let done: Vec<Instant> = keys
                    .iter()
                    .filter_map(|k| match outcomes.get(k) {
                        Some((s, Outcome::Applied | Outcome::AlreadySo, at)) if *s == seq => {
                            Some(*at)
                        }
                        _ => None,
                    })
                    .collect();
                if done.len() == keys.len() {
                    verified = done.iter().max().map(|at| *at - started);
                }
            }
            if at_peer.is_none() {
                let held = peer_paths(tb, at.neighbor, at.afi);
                let all = prefixes
                    .iter()
                    .all(|p| held.get(p).cloned() == wanted.clone());
                if all {
                    at_peer = Some(started.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let any pass after the verifying one end before counting.
        std::thread::sleep(Duration::from_secs(1));
        let after = counter.counts();
        let failed = outcomes
            .lock()
            .unwrap()
            .values()
            .filter(|(s, o, _)| *s == seq && !matches!(o, Outcome::Applied | Outcome::AlreadySo))
            .count();
        out.push(Figures {
            calls: after.0 - before.0,
            lines: after.1 - before.1,
            own: after.2 - before.2,
            verified: verified.unwrap_or_default(),
            at_peer: at_peer.unwrap_or_default(),
            failed,
        });
    }
    drop(handle);
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_max(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (values[values.len() / 2], values[values.len() - 1])
}

fn print(daemon: &str, calls: &str, lines: &str, runs: &[Vec<Figures>]) {
    println!("\n{daemon}: {} runs", runs.len());
    for (p, (name, _)) in phases().iter().enumerate() {
        for (r, run) in runs.iter().enumerate() {
            let f = &run[p];
            let counts = if daemon == "BIRD" {
                format!(
                    "{} {calls}, {} {lines}, BIRD logged {} reconfigurations",
                    f.calls, f.lines, f.own
                )
            } else {
                format!(
                    "{} {calls} ({} writing, {} -c lines in those)",
                    f.calls, f.own, f.lines
                )
            };
            println!(
                "  {name:<22} run {}: {counts}; verified {:.0} ms, at the peer {:.0} ms{}",
                r + 1,
                ms(f.verified),
                ms(f.at_peer),
                if f.failed > 0 {
                    format!(" ({} outcomes not applied)", f.failed)
                } else {
                    String::new()
                }
            );
        }
        let (vm, vx) = median_max(&mut runs.iter().map(|r| ms(r[p].verified)).collect::<Vec<_>>());
        let (pm, px) = median_max(&mut runs.iter().map(|r| ms(r[p].at_peer)).collect::<Vec<_>>());
        println!(
            "  {name:<22} median/max: verified {vm:.0}/{vx:.0} ms, at the peer {pm:.0}/{px:.0} ms"
        );
    }
}

fn established(tb: &Testbed, neighbor: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{}-peer", tb.name)])
        .args(["gobgp", "neighbor", neighbor, "-j"])
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    json["state"]["session_state"] == 6 || json["state"]["session_state"] == "established"
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let services = value("--services", 1000).clamp(1, 65536);
    let runs = value("--runs", 3).max(1);
    if let Some(reason) = testbed::missing_prerequisite(testbed::Peer::Gobgp) {
        println!("level_switch: skipped: {reason}");
        return;
    }
    if Command::new("bird").arg("--version").output().is_err() {
        println!("level_switch: skipped: packages missing: bird2 (apt-get install bird2)");
        return;
    }
    let Some(tb) = Testbed::up_with_bird() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tb.wait_established();

    // FRR: `bgp network import-check` finds each address on lo of FRR's namespace.
    let frr_keys: Vec<PrefixKey> = (0..services)
        .map(|i| {
            let net = format!("10.{}.{}.1/32", i >> 8, i & 255);
            (Place::from(None), net.parse().unwrap())
        })
        .collect();
    let batch: String = frr_keys
        .iter()
        .map(|k| format!("addr add {} dev lo\n", k.1))
        .collect();
    std::fs::write(d.join("addresses.batch"), batch).unwrap();
    let status = Command::new("ip")
        .args(["-n", &format!("{}-r1", tb.name), "-batch"])
        .arg(d.join("addresses.batch"))
        .status()
        .unwrap();
    assert!(status.success(), "adding the addresses to FRR's namespace");

    // BIRD: the testbed's speaker restarted with an export filter that carries the MED to the
    // EBGP peer (as the README's bird.conf), its log in a file.
    let include = tb.bird_include_dir();
    let bird_log = d.join("bird.log");
    let conf = d.join("bird.conf");
    std::fs::write(
        &conf,
        format!(
            r#"log "{log}" all;
router id 203.0.113.181;
protocol device {{ }}
protocol static anycastd4 {{
  ipv4;
include "{include}*/bird-anycastd4.conf";
}}
protocol bgp peer_v4 {{
  local 192.0.2.9 as 65538; neighbor 192.0.2.10 as 65001;
  hold time 9; keepalive time 3; connect retry time 1; error wait time 1, 5;
  ipv4 {{
    import none;
    export filter {{
      if proto != "anycastd4" then reject;
      if defined(bgp_med) then bgp_med = bgp_med;
      accept;
    }};
  }};
}}
"#,
            log = bird_log.display(),
            include = include.display()
        ),
    )
    .unwrap();
    tb.bird_ctl("stop-bird");
    tb.start_bird_with(&conf);
    wait("BIRD's session with the peer", || {
        established(&tb, "192.0.2.9")
    });
    let bird_keys: Vec<PrefixKey> = (0..services)
        .map(|i| {
            let net = format!("198.18.{}.{}/32", i >> 8, i & 255);
            (Place::named("anycastd4"), net.parse().unwrap())
        })
        .collect();
    let proxy = d.join("bird-proxy.ctl");
    let bird_count = bird_proxy(&proxy, tb.bird_socket(), bird_log);

    println!(
        "level_switch: {services} prefixes per daemon, {runs} runs (real FRR and BIRD, gobgpd peer)"
    );
    let (vtysh, vtysh_log) = counting_vtysh(d);
    let frr = Frr::new(
        &BackendId::frr(&vtysh),
        &frr::Settings {
            args: tb.vtysh_args(),
            ..Default::default()
        },
    );
    let mut frr_runs = Vec::new();
    let mut bird_runs = Vec::new();
    for r in 0..runs {
        eprintln!("run {}: FRR", r + 1);
        frr_runs.push(run(
            &tb,
            frr.clone(),
            &frr_keys,
            &vtysh_log,
            &AtPeer {
                neighbor: "192.0.2.1",
                afi: "ipv4",
                asn: 65536,
            },
        ));
        eprintln!("run {}: BIRD", r + 1);
        let bird = Bird::new(
            &BackendId::bird(&proxy),
            &anycastd::routing::bird::Settings {
                include_dir: include.clone(),
                timeout: Duration::from_secs(60),
                reconcile_interval: HOUR,
            },
        );
        bird_runs.push(run(
            &tb,
            bird,
            &bird_keys,
            &bird_count,
            &AtPeer {
                neighbor: "192.0.2.9",
                afi: "ipv4",
                asn: 65538,
            },
        ));
    }
    print("FRR", "vtysh calls", "", &frr_runs);
    print("BIRD", "conversations", "configure", &bird_runs);
}
