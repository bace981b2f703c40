//! Whole-process benchmark: the real `anycastd` binary with N services × K checks × 2 prefixes
//! (IPv4 + IPv6), its checks served by a fast Cabourotte stand-in on 127.0.0.1 (in this
//! process, keep-alive, one result per check, flipped in memory), FRR played by a minimal fake
//! vtysh that keeps the `network` lines in a state file and logs every call (this same binary,
//! run as `fleet --fake-vtysh ...`).
//!
//! ```sh
//! cargo bench --bench fleet                     # 1,000 services × 2 checks at 1 s
//! cargo bench --bench fleet -- --services 100 --steady-secs 10 --flap-secs 600
//! cargo bench --bench fleet -- --kind http      # the same as built-in HTTP checks
//! cargo bench --bench fleet -- --kind exec --services 100 --checks 1   # /bin/true
//! ```
//!
//! `--kind http` polls the stand-in as built-in HTTP checks (`GET .../result/NAME`, a failing
//! check answers 503); `--kind exec` runs `/bin/true` (no server: only the start, the
//! steady state with the CPU of the commands and the zombies seen, and SIGTERM).
//!
//! Phases and what each reports:
//! 1. start: daemon spawn → first check request → all 2N prefixes in FRR, and the vtysh
//!    processes spawned for it;
//! 2. steady state (after a warm-up): the daemon's CPU seconds per second, RSS, open fds,
//!    HTTP requests/s and new connections/s, and every check's poll period;
//! 3. reaction: one check of one service fails; the time from the failing response leaving the
//!    server to the first vtysh process starting, median and max over `--reactions` services;
//! 4. mass failure: the check server stops answering (connections closed): time until
//!    everything is withdrawn, vtysh processes and journal flushes it cost; then recovery;
//! 5. optional flapping (`--flap-secs`): random checks flip 10 times a second; RSS sampled
//!    every 10 s to show whether memory grows;
//! 6. SIGTERM: time to exit, with everything withdrawn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The fake vtysh: `--state FILE --log FILE [-c LINE]...`. One instance, `router bgp 65000`
/// (default VRF). Logs `START_NS PID start LINES` first and `END_NS PID end NETWORKS` last.
mod fake_vtysh {
    use super::now_ns;
    use std::collections::BTreeSet;
    use std::io::Write;

    pub const ASN: u32 = 65000;

    pub fn main(args: &[String]) -> i32 {
        let started = now_ns();
        let mut state = None;
        let mut log = None;
        let mut lines = Vec::new();
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--state" => state = args.get(i + 1).cloned(),
                "--log" => log = args.get(i + 1).cloned(),
                "-c" => lines.extend(args.get(i + 1).cloned()),
                _ => {}
            }
            i += 2;
        }
        let (Some(state), Some(log)) = (state, log) else {
            println!("fake vtysh: --state and --log are required");
            return 2;
        };
        let pid = std::process::id();
        append(
            &log,
            &format!("{started} {pid} start {}\n", lines.join(" | ")),
        );
        let mut networks: BTreeSet<String> = std::fs::read_to_string(&state)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let before = networks.len();
        let mut out = String::new();
        let mut code = 0;
        let mut in_instance = false;
        for line in &lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["show", "running-config", ..] => {
                    out.push_str("Building configuration...\n\nCurrent configuration:\n!\n");
                    out.push_str(&format!("router bgp {ASN}\n"));
                    for afi in ["ipv4", "ipv6"] {
                        out.push_str(&format!(" address-family {afi} unicast\n"));
                        for net in networks
                            .iter()
                            .filter(|n| n.contains(':') == (afi == "ipv6"))
                        {
                            out.push_str(&format!("  network {net}\n"));
                        }
                        out.push_str(" exit-address-family\n");
                    }
                    out.push_str("exit\n!\nend\n");
                }
                ["show", "daemons"] => out.push_str(" zebra bgpd staticd\n"),
                ["configure", ..] | ["address-family", ..] => {}
                ["router", "bgp", asn] if *asn == ASN.to_string() => in_instance = true,
                ["network", net] if in_instance => {
                    networks.insert((*net).to_owned());
                }
                ["no", "network", net] if in_instance => {
                    if !networks.remove(*net) {
                        out.push_str("% Can't find static route specified\n");
                        code = 1;
                        break;
                    }
                }
                _ => {
                    out.push_str(&format!("% Unknown command: {line}\n"));
                    code = 1;
                    break;
                }
            }
        }
        if networks.len() != before || code == 0 && lines.iter().any(|l| l.starts_with("conf")) {
            let tmp = format!("{state}.{pid}");
            let mut text = String::new();
            for net in &networks {
                text.push_str(net);
                text.push('\n');
            }
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &state);
            }
        }
        print!("{out}");
        let _ = std::io::stdout().flush();
        append(
            &log,
            &format!("{} {pid} end {}\n", now_ns(), networks.len()),
        );
        code
    }

    fn append(path: &str, text: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// One line of the fake vtysh's log.
#[derive(Debug, Clone)]
struct VtyshEvent {
    at_ns: u64,
    start: bool,
    /// For `end`: the networks in FRR after the call.
    networks: usize,
}

fn vtysh_log(path: &Path) -> Vec<VtyshEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.splitn(4, ' ');
            let at_ns = words.next()?.parse().ok()?;
            let _pid = words.next()?;
            let kind = words.next()?;
            let rest = words.next().unwrap_or("");
            Some(VtyshEvent {
                at_ns,
                start: kind == "start",
                networks: if kind == "end" {
                    rest.trim().parse().ok()?
                } else {
                    0
                },
            })
        })
        .collect()
}

/// The Cabourotte stand-in: `GET /api/v1/result/NAME`, HTTP/1.1 keep-alive.
mod server {
    use super::now_ns;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    pub struct Periods {
        pub last_ns: u64,
        pub periods_ns: Vec<u64>,
    }

    pub struct Shared {
        pub names: HashMap<String, usize>,
        pub healthy: Vec<AtomicBool>,
        /// When a failing result was first served since the check was flipped (0: not yet).
        pub fail_served_ns: Vec<AtomicU64>,
        pub requests: AtomicU64,
        pub connections: AtomicU64,
        pub first_request_ns: AtomicU64,
        /// Closes every connection without an answer while set ("the server died").
        pub down: AtomicBool,
        pub recording: AtomicBool,
        pub periods: Vec<Mutex<Periods>>,
        /// A failing check answers 503 (built-in HTTP checks) instead of `success: false`.
        pub http_status: AtomicBool,
    }

    impl Shared {
        pub fn new(names: Vec<String>) -> Arc<Shared> {
            let n = names.len();
            Arc::new(Shared {
                names: names.into_iter().enumerate().map(|(i, n)| (n, i)).collect(),
                healthy: (0..n).map(|_| AtomicBool::new(true)).collect(),
                fail_served_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
                requests: AtomicU64::new(0),
                connections: AtomicU64::new(0),
                first_request_ns: AtomicU64::new(0),
                down: AtomicBool::new(false),
                recording: AtomicBool::new(false),
                http_status: AtomicBool::new(false),
                periods: (0..n).map(|_| Mutex::default()).collect(),
            })
        }

        pub fn set_healthy(&self, check: usize, healthy: bool) {
            self.fail_served_ns[check].store(0, Ordering::SeqCst);
            self.healthy[check].store(healthy, Ordering::SeqCst);
        }
    }

    /// Serve on a listener bound by the caller; runs on its own runtime thread.
    pub fn start(listener: std::net::TcpListener, shared: Arc<Shared>) {
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    if shared.down.load(Ordering::SeqCst) {
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, shared.clone()));
                }
            });
        });
    }

    async fn connection(mut stream: tokio::net::TcpStream, shared: Arc<Shared>) {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let end = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            if shared.down.load(Ordering::SeqCst) {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let name = path.rsplit('/').next().unwrap_or("");
            let now = now_ns();
            let _ = shared.first_request_ns.compare_exchange(
                0,
                now,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let (status, body, check) = match shared.names.get(name) {
                Some(&i) => {
                    let healthy = shared.healthy[i].load(Ordering::SeqCst);
                    let body = format!(
                        r#"{{"name":"{name}","summary":"bench","success":{healthy},"healthcheck-timestamp":{},"message":"{}","duration":1,"source":"configuration"}}"#,
                        now / 1_000_000_000,
                        if healthy {
                            "ok"
                        } else {
                            "bench: flipped to failing"
                        }
                    );
                    let status = if !healthy && shared.http_status.load(Ordering::Relaxed) {
                        "503 Service Unavailable"
                    } else {
                        "200 OK"
                    };
                    (status, body, Some((i, healthy)))
                }
                None => (
                    "404 Not Found",
                    r#"{"message":"Not Found"}"#.to_owned(),
                    None,
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            if let Some((i, healthy)) = check {
                let served = now_ns();
                if !healthy {
                    let _ = shared.fail_served_ns[i].compare_exchange(
                        0,
                        served,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                if shared.recording.load(Ordering::Relaxed) {
                    let mut p = shared.periods[i].lock().unwrap();
                    if p.last_ns != 0 {
                        let period = now - p.last_ns;
                        p.periods_ns.push(period);
                    }
                    p.last_ns = now;
                }
            }
        }
    }
}

struct Options {
    services: usize,
    checks: usize,
    interval_ms: u64,
    warmup_secs: u64,
    steady_secs: u64,
    reactions: usize,
    flap_secs: u64,
    keep: bool,
    frr: bool,
    cache_mib: u64,
    kind: String,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut o = Options {
            services: 1000,
            checks: 2,
            interval_ms: 1000,
            warmup_secs: 10,
            steady_secs: 30,
            reactions: 30,
            flap_secs: 0,
            keep: false,
            frr: false,
            cache_mib: 8,
            kind: "cabourotte".into(),
        };
        let mut i = 0;
        while i < args.len() {
            let value = || -> u64 {
                args.get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{} needs a number", args[i]))
            };
            match args[i].as_str() {
                "--services" => o.services = value() as usize,
                "--checks" => o.checks = value() as usize,
                "--interval-ms" => o.interval_ms = value(),
                "--warmup-secs" => o.warmup_secs = value(),
                "--steady-secs" => o.steady_secs = value(),
                "--reactions" => o.reactions = value() as usize,
                "--flap-secs" => o.flap_secs = value(),
                "--journal-cache-mib" => o.cache_mib = value(),
                "--kind" => {
                    o.kind = args.get(i + 1).cloned().unwrap_or_default();
                    assert!(
                        ["cabourotte", "http", "exec"].contains(&o.kind.as_str()),
                        "--kind cabourotte|http|exec"
                    );
                    i += 2;
                    continue;
                }
                "--keep" => {
                    o.keep = true;
                    i += 1;
                    continue;
                }
                "--frr" => {
                    o.frr = true;
                    i += 1;
                    continue;
                }
                "--bench" => {
                    i += 1;
                    continue;
                }
                other => panic!("unknown option {other}"),
            }
            i += 2;
        }
        o
    }
}

fn v4(service: usize) -> String {
    format!("10.{}.{}.1/32", (service >> 8) & 255, service & 255)
}

fn v6(service: usize) -> String {
    // As the daemon prints it (fd00::0:1 is fd00::1).
    format!("fd00::{service:x}:1/128")
        .parse::<ipnet::IpNet>()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

fn check_name(service: usize, check: usize) -> String {
    format!("s{service}c{check}")
}

fn write_config(
    dir: &Path,
    o: &Options,
    http_port: u16,
    metrics_port: u16,
    testbed: Option<&Path>,
) -> PathBuf {
    let (exe, vtysh_args) = match testbed {
        None => (
            std::env::current_exe().unwrap(),
            format!(
                r#"["--fake-vtysh", "--state", "{}", "--log", "{}"]"#,
                dir.join("frr.state").display(),
                dir.join("vtysh.log").display()
            ),
        ),
        Some(tb) => {
            // Real vtysh behind a wrapper that logs when each call starts.
            let wrapper = dir.join("vtysh-wrap");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/bash\nt=${{EPOCHREALTIME/./}}\necho \"${{t}}000 $$ start x\" >> {}\nexec /usr/bin/vtysh \"$@\"\n",
                    dir.join("vtysh.log").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            (
                wrapper,
                format!(
                    r#"["--vty_socket", "{}", "--config_dir", "{}"]"#,
                    tb.join("frr/run").display(),
                    tb.join("frr/etc").display()
                ),
            )
        }
    };
    let mut text = format!(
        r#"[journal]
path = "{journal}"
cache_mib = {cache_mib}

[control]
socket = "{socket}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[frrouting]
vtysh_args = {vtysh_args}
"#,
        journal = dir.join("journal").display(),
        socket = dir.join("ctl.sock").display(),
        cache_mib = o.cache_mib,
    );
    for s in 0..o.services {
        text.push_str(&format!(
            "\n[services.s{s}]\nprefixes.frrouting = [{{ prefix = \"{}\", vtysh = \"{}\" }}, {{ prefix = \"{}\", vtysh = \"{}\" }}]\nchecks.{} = [\n",
            v4(s),
            exe.display(),
            v6(s),
            exe.display(),
            o.kind
        ));
        for c in 0..o.checks {
            let target = match o.kind.as_str() {
                "http" => format!(
                    "url = \"http://127.0.0.1:{http_port}/api/v1/result/{}\"",
                    check_name(s, c)
                ),
                "exec" => "command = \"/bin/true\"".to_owned(),
                _ => format!("url = \"http://127.0.0.1:{http_port}\""),
            };
            text.push_str(&format!(
                "    {{ name = \"{}\", {target}, interval = \"{}ms\" }},\n",
                check_name(s, c),
                o.interval_ms
            ));
        }
        text.push_str("]\n");
    }
    let path = dir.join("anycastd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The zombie children of `pid` right now.
fn zombies_of(pid: u32) -> std::collections::BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')').map(|(_, r)| r.to_owned())?;
            let fields: Vec<&str> = after.split_whitespace().collect();
            (fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()))
                .then_some(child)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (user + system CPU seconds of the process itself, of its waited-for children).
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<f64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0; // USER_HZ on Linux
    let get = |field: usize| fields.get(field - 3).copied().unwrap_or(0.0) / tick;
    (get(14) + get(15), get(16) + get(17))
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn metric(port: u16, name: &str) -> f64 {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return f64::NAN;
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn networks(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(dir.join("frr.state"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// FRR as the bench sees it: the fake vtysh's state file and log, or a real FRR testbed
/// (tests/testbed/testbed.sh) whose vtysh is wrapped by a script logging each call's start.
struct Frr {
    dir: PathBuf,
    /// The testbed's directory (real FRR).
    testbed: Option<PathBuf>,
}

impl Frr {
    fn log(&self) -> PathBuf {
        self.dir.join("vtysh.log")
    }

    fn networks(&self) -> std::collections::BTreeSet<String> {
        let Some(tb) = &self.testbed else {
            return networks(&self.dir);
        };
        let out = Command::new("/usr/bin/vtysh")
            .arg("--vty_socket")
            .arg(tb.join("frr/run"))
            .arg("--config_dir")
            .arg(tb.join("frr/etc"))
            .args(["-c", "show running-config bgpd"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("network "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// When FRR first held `count` networks at or after `since_ns`, waiting for it. The fake
    /// logs it exactly; with real FRR it is the end of the first `show running-config` that
    /// saw it (late by at most one such call; the polling interval is printed).
    fn reached(&self, count: usize, since_ns: u64, what: &str) -> u64 {
        if self.testbed.is_none() {
            let find = || {
                vtysh_log(&self.log())
                    .iter()
                    .filter(|e| !e.start && e.networks == count && e.at_ns >= since_ns)
                    .map(|e| e.at_ns)
                    .min()
            };
            wait_for(what, Duration::from_secs(60), || find().is_some());
            return find().unwrap_or(0);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.networks().len() == count {
                return now_ns();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    }

    /// vtysh processes started in [from, to].
    fn spawns(&self, from_ns: u64, to_ns: u64) -> usize {
        vtysh_log(&self.log())
            .iter()
            .filter(|e| e.start && e.at_ns >= from_ns && e.at_ns <= to_ns)
            .count()
    }
}

/// A testbed for `--frr`, taken down when dropped.
struct Testbed {
    name: String,
    dir: PathBuf,
}

impl Testbed {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/testbed.sh")
    }

    fn up(dir: &Path, services: usize) -> Testbed {
        let tb = Testbed {
            name: "acdfleet".into(),
            dir: dir.join("tb"),
        };
        let run = |args: &[&str]| {
            let status = Command::new(Testbed::script())
                .args(args)
                .env("TB_NAME", &tb.name)
                .env("TB_DIR", &tb.dir)
                .status()
                .unwrap();
            assert!(status.success(), "testbed.sh {args:?} failed");
        };
        let _ = Command::new(Testbed::script())
            .arg("down")
            .env("TB_NAME", &tb.name)
            .env("TB_DIR", &tb.dir)
            .status();
        run(&["up"]);
        run(&["wait"]);
        // bgp network import-check: every service address exists on lo of FRR's namespace.
        let mut batch = String::new();
        for s in 0..services {
            batch.push_str(&format!(
                "addr add {} dev lo
",
                v4(s)
            ));
            batch.push_str(&format!(
                "addr add {} dev lo nodad
",
                v6(s)
            ));
        }
        let batch_file = dir.join("addresses.batch");
        std::fs::write(&batch_file, batch).unwrap();
        let status = Command::new("ip")
            .args(["-n", &format!("{}-r1", tb.name), "-batch"])
            .arg(&batch_file)
            .status()
            .unwrap();
        assert!(status.success(), "adding the service addresses failed");
        tb
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(Testbed::script())
            .arg("down")
            .env("TB_NAME", &self.name)
            .env("TB_DIR", &self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When the daemon logged service `s` becoming unhealthy after `after_ns` (its JSON log's
/// timestamp is taken after the transition is on disk).
fn transition_logged_ns(log: &Path, s: usize, after_ns: u64) -> Option<u64> {
    let needle = format!("Service \\\"s{s}\\\" is now considered unhealthy");
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            let stamp = l.split("\"timestamp\":\"").nth(1)?.split('"').next()?;
            let t = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
            u64::try_from(t.timestamp_nanos_opt()?).ok()
        })
        .filter(|&t| t >= after_ns.saturating_sub(5_000_000))
        .min()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--fake-vtysh") {
        std::process::exit(fake_vtysh::main(&args[1..]));
    }
    let o = Options::parse(&args);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let _guard = if o.keep {
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    let n = o.services;
    let total_prefixes = 2 * n;
    let names: Vec<String> = (0..n)
        .flat_map(|s| (0..o.checks).map(move |c| check_name(s, c)))
        .collect();
    let shared = server::Shared::new(names);
    shared.http_status.store(o.kind == "http", Ordering::SeqCst);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = listener.local_addr().unwrap().port();
    server::start(listener, shared.clone());
    let metrics_port = free_port();
    let testbed = o.frr.then(|| Testbed::up(&dir, n));
    let frr = Frr {
        dir: dir.clone(),
        testbed: testbed.as_ref().map(|t| t.dir.clone()),
    };
    let config = write_config(&dir, &o, http_port, metrics_port, frr.testbed.as_deref());
    let log_path = frr.log();
    println!(
        "fleet: {n} services x {} checks at {} ms, {total_prefixes} prefixes; {}; dir {}",
        o.checks,
        o.interval_ms,
        if o.frr {
            "real FRR (testbed) and a vtysh wrapper"
        } else {
            "fake vtysh"
        },
        dir.display()
    );
    println!(
        "machine: {} CPUs, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("?")
            .trim()
    );

    // 1. Start.
    let spawned_ns = now_ns();
    let spawned = Instant::now();
    let daemon_log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    // FLEET_WRAP (e.g. "heaptrack -o /tmp/ht") runs the daemon under a profiler; the CPU and
    // RSS figures are then the wrapper's.
    // FLEET_BINARY runs another build of the daemon (a before/after pair measured by the same
    // harness); the default is the one built with this bench.
    let binary =
        std::env::var("FLEET_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_anycastd").to_owned());
    let wrap = std::env::var("FLEET_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(&binary);
            command
        }
        None => Command::new(&binary),
    };
    let child = command
        .args(["run", "-c"])
        .arg(&config)
        .args(["--log-format", "json", "--log-level", "info"])
        .stdin(Stdio::null())
        .stdout(daemon_log.try_clone().unwrap())
        .stderr(daemon_log)
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child };
    let pid = daemon.child.id();
    let all_at = frr.reached(total_prefixes, spawned_ns, "all prefixes announced");
    let first_request = shared.first_request_ns.load(Ordering::SeqCst);
    let spawns_to_all = frr.spawns(0, all_at);
    let ms = |ns: u64| ns as f64 / 1e6;
    println!("\n== start");
    if o.kind != "exec" {
        println!(
            "spawn -> first check request      {:8.1} ms",
            ms(first_request.saturating_sub(spawned_ns))
        );
        println!(
            "first check request -> all {total_prefixes} announced {:8.1} ms",
            ms(all_at.saturating_sub(first_request))
        );
    }
    println!(
        "spawn -> all announced            {:8.1} ms",
        ms(all_at.saturating_sub(spawned_ns))
    );
    println!("vtysh processes until then        {spawns_to_all:8}");
    println!(
        "RSS then                          {:8.1} MiB",
        rss_kib(pid).0 as f64 / 1024.0
    );
    if o.frr {
        let t = Instant::now();
        let _ = frr.networks();
        println!(
            "(real FRR: times are when a `show running-config` saw it; one takes {:.1} ms)",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let _ = spawned;

    // 2. Steady state.
    std::thread::sleep(Duration::from_secs(o.warmup_secs));
    let spawns_before = vtysh_log(&log_path).iter().filter(|e| e.start).count();
    let (cpu0, _) = cpu_seconds(pid);
    let requests0 = shared.requests.load(Ordering::SeqCst);
    let connections0 = shared.connections.load(Ordering::SeqCst);
    shared.recording.store(true, Ordering::SeqCst);
    let window = Instant::now();
    let mut rss_samples = Vec::new();
    while window.elapsed() < Duration::from_secs(o.steady_secs) {
        std::thread::sleep(Duration::from_secs(1));
        rss_samples.push(rss_kib(pid).0);
    }
    let elapsed = window.elapsed().as_secs_f64();
    shared.recording.store(false, Ordering::SeqCst);
    let (cpu1, _) = cpu_seconds(pid);
    let requests = shared.requests.load(Ordering::SeqCst) - requests0;
    let connections = shared.connections.load(Ordering::SeqCst) - connections0;
    let spawns_steady = vtysh_log(&log_path).iter().filter(|e| e.start).count() - spawns_before;
    let mut periods = Vec::new();
    let mut per_check_mean = Vec::new();
    for p in &shared.periods {
        let p = p.lock().unwrap();
        if !p.periods_ns.is_empty() {
            per_check_mean
                .push(p.periods_ns.iter().sum::<u64>() as f64 / p.periods_ns.len() as f64 / 1e6);
        }
        periods.extend(p.periods_ns.iter().map(|&v| v as f64 / 1e6));
    }
    let periods = sorted(periods);
    let per_check_mean = sorted(per_check_mean);
    let (rss, hwm) = rss_kib(pid);
    println!(
        "\n== steady state ({elapsed:.0} s after {} s warm-up)",
        o.warmup_secs
    );
    println!(
        "CPU                               {:8.2} % of one core",
        (cpu1 - cpu0) / elapsed * 100.0
    );
    println!(
        "RSS now / min / max in window     {:8.1} / {:.1} / {:.1} MiB (peak {:.1} MiB)",
        rss as f64 / 1024.0,
        *rss_samples.iter().min().unwrap_or(&0) as f64 / 1024.0,
        *rss_samples.iter().max().unwrap_or(&0) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("open fds                          {:8}", open_fds(pid));
    println!(
        "HTTP requests/s                   {:8.0}",
        requests as f64 / elapsed
    );
    println!(
        "new connections/s                 {:8.2} ({connections} in the window)",
        connections as f64 / elapsed
    );
    println!(
        "poll period ms p1/p50/p99/max     {:.1} / {:.1} / {:.1} / {:.1} ({} periods)",
        percentile(&periods, 0.01),
        percentile(&periods, 0.5),
        percentile(&periods, 0.99),
        periods.last().copied().unwrap_or(f64::NAN),
        periods.len()
    );
    println!(
        "mean period per check min/max     {:.1} / {:.1} ms ({} checks; {} checks not polled twice)",
        per_check_mean.first().copied().unwrap_or(f64::NAN),
        per_check_mean.last().copied().unwrap_or(f64::NAN),
        per_check_mean.len(),
        shared.periods.len() - per_check_mean.len()
    );
    println!("vtysh processes in the window     {spawns_steady:8}");

    if o.kind == "exec" {
        // The commands' CPU: the children the daemon reaped, in the same window.
        let (_, children0) = cpu_seconds(pid);
        // A command is a zombie from its exit until the daemon reaps it: all 100 exit within
        // a millisecond of each other, so a sample at that moment sees many. One still a
        // zombie a sample later (250 ms on) would be a leak.
        let mut most = 0usize;
        let mut lingering = 0usize;
        let mut previous: std::collections::BTreeSet<u32> = Default::default();
        let window = Instant::now();
        while window.elapsed() < Duration::from_secs(o.steady_secs) {
            std::thread::sleep(Duration::from_millis(250));
            let now = zombies_of(pid);
            most = most.max(now.len());
            lingering += now.intersection(&previous).count();
            previous = now;
        }
        let elapsed = window.elapsed().as_secs_f64();
        let (_, children1) = cpu_seconds(pid);
        let (cpu_self, _) = cpu_seconds(pid);
        println!("\n== exec checks ({elapsed:.0} s more)");
        println!(
            "CPU of the commands               {:8.2} % of one core",
            (children1 - children0) / elapsed * 100.0
        );
        println!("daemon CPU so far                 {cpu_self:8.2} s");
        println!("zombies at one sample, most       {most:8} (each 250 ms; the commands of one round exit together)");
        println!("zombies still there 250 ms later  {lingering:8}");
    }
    if o.kind != "exec" {
        // 3. Reaction.
        let mut reactions = Vec::new();
        let mut journaled = Vec::new();
        for r in 0..o.reactions {
            let s = r * n / o.reactions.max(1);
            let check = s * o.checks;
            shared.set_healthy(check, false);
            let (v4, v6) = (v4(s), v6(s));
            wait_for("a withdrawal", Duration::from_secs(30), || {
                let set = frr.networks();
                !set.contains(&v4) && !set.contains(&v6)
            });
            let served = shared.fail_served_ns[check].load(Ordering::SeqCst);
            let first = vtysh_log(&log_path)
                .iter()
                .filter(|e| e.start && e.at_ns >= served)
                .map(|e| e.at_ns)
                .min()
                .unwrap();
            reactions.push((first - served) as f64 / 1e6);
            if let Some(logged) = transition_logged_ns(&dir.join("daemon.log"), s, served) {
                journaled.push(logged.saturating_sub(served) as f64 / 1e6);
            }
            shared.set_healthy(check, true);
            wait_for("a re-announcement", Duration::from_secs(30), || {
                let set = frr.networks();
                set.contains(&v4) && set.contains(&v6)
            });
            // The next failure must be a lone change, not part of this re-announcement's burst.
            std::thread::sleep(Duration::from_millis(500));
        }
        let reactions = sorted(reactions);
        println!(
            "\n== reaction ({} services, one at a time)",
            reactions.len()
        );
        println!(
            "failing result -> first vtysh     median {:.2} ms, max {:.2} ms",
            percentile(&reactions, 0.5),
            reactions.last().copied().unwrap_or(f64::NAN)
        );
        let journaled = sorted(journaled);
        println!(
        "  of which result -> transition logged (journaled durably) median {:.2} ms, max {:.2} ms",
        percentile(&journaled, 0.5),
        journaled.last().copied().unwrap_or(f64::NAN)
    );

        // 4. Mass failure.
        std::thread::sleep(Duration::from_secs(2));
        let flushes0 = metric(metrics_port, "anycastd_journal_flushes_total");
        let down_ns = now_ns();
        shared.down.store(true, Ordering::SeqCst);
        let withdrawn_at = frr.reached(0, down_ns, "everything withdrawn");
        let spawns = frr.spawns(down_ns, withdrawn_at);
        std::thread::sleep(Duration::from_millis(500));
        let flushes1 = metric(metrics_port, "anycastd_journal_flushes_total");
        println!("\n== mass failure (the check server closes every connection)");
        println!(
            "server down -> all withdrawn      {:8.1} ms",
            ms(withdrawn_at.saturating_sub(down_ns))
        );
        println!("vtysh processes                   {spawns:8}");
        println!(
            "journal flushes                   {:8}",
            flushes1 - flushes0
        );
        let up_ns = now_ns();
        shared.down.store(false, Ordering::SeqCst);
        let back_at = frr.reached(total_prefixes, up_ns, "everything re-announced");
        let spawns = frr.spawns(up_ns, back_at);
        println!(
            "server back -> all announced      {:8.1} ms, {spawns} vtysh processes",
            ms(back_at.saturating_sub(up_ns))
        );

        // 5. Flapping.
        if o.flap_secs > 0 {
            println!("\n== flapping for {} s (10 flips/s)", o.flap_secs);
            let started = Instant::now();
            let mut samples: Vec<(u64, u64)> = Vec::new();
            let appends0 = metric(metrics_port, "anycastd_journal_appends_total");
            let mut next_sample = Instant::now();
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut flips = 0u64;
            while started.elapsed() < Duration::from_secs(o.flap_secs) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let check = (seed % shared.healthy.len() as u64) as usize;
                let healthy = shared.healthy[check].load(Ordering::SeqCst);
                shared.set_healthy(check, !healthy);
                flips += 1;
                if Instant::now() >= next_sample {
                    let (rss, _) = rss_kib(pid);
                    samples.push((started.elapsed().as_secs(), rss));
                    next_sample += Duration::from_secs(10);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let after_warmup: Vec<&(u64, u64)> = samples.iter().filter(|(t, _)| *t >= 60).collect();
            let (first, last) = (
                after_warmup.first().map(|s| s.1),
                after_warmup.last().map(|s| s.1),
            );
            let max = after_warmup.iter().map(|s| s.1).max();
            let appends = metric(metrics_port, "anycastd_journal_appends_total") - appends0;
            println!("flips                             {flips:8}");
            println!(
                "journal records appended          {:8} ({:.1} per flip)",
                appends,
                appends / flips.max(1) as f64
            );
            for (t, rss) in &samples {
                if t % 60 == 0 {
                    println!(
                        "  RSS at {t:4} s                   {:8.1} MiB",
                        *rss as f64 / 1024.0
                    );
                }
            }
            if let (Some(first), Some(last), Some(max)) = (first, last, max) {
                println!(
                    "RSS 60 s -> end (max)             {:.1} -> {:.1} MiB ({:.1}), growth {:+} KiB",
                    first as f64 / 1024.0,
                    last as f64 / 1024.0,
                    max as f64 / 1024.0,
                    last as i64 - first as i64
                );
            }
            println!("open fds                          {:8}", open_fds(pid));
            for check in 0..shared.healthy.len() {
                shared.set_healthy(check, true);
            }
            wait_for("everything re-announced", Duration::from_secs(60), || {
                frr.networks().len() == total_prefixes
            });
        }
    }

    // 6. SIGTERM.
    let (cpu_total, children_cpu) = cpu_seconds(pid);
    let term = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let took = term.elapsed();
    let left = frr.networks().len();
    println!("\n== SIGTERM");
    println!(
        "SIGTERM -> exit                   {:8.1} ms (exit code {:?}, {left} prefixes left in FRR)",
        took.as_secs_f64() * 1000.0,
        status.code()
    );
    println!(
        "daemon CPU over the whole run     {cpu_total:.2} s (+ {children_cpu:.2} s in vtysh processes)"
    );
    let requests_total = shared.requests.load(Ordering::SeqCst);
    let connections_total = shared.connections.load(Ordering::SeqCst);
    println!("HTTP requests / connections       {requests_total} / {connections_total}");
}
