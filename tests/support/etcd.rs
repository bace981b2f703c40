//! A real etcd (Debian's `etcd-server`, `/usr/bin/etcd`) for the fleet guard's tests: one
//! member on 127.0.0.1 ports of its own, its data in a temporary directory, run in the
//! foreground and killed by its PID when dropped. A test gets `None` (after recording why, see
//! `support::skip`) when etcd is not installed, unless `ANYCASTD_TEST_REQUIRE_ALL=1` (set by
//! `scripts/test --all` and `.ci/run`), which makes it a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary the tests run.
pub const ETCD: &str = "/usr/bin/etcd";
/// etcd's command-line client, for looking at the keys from outside.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// One running etcd member.
pub struct Etcd {
    child: Option<Child>,
    /// Its data directory and log.
    pub dir: tempfile::TempDir,
    /// The client port (127.0.0.1).
    pub client_port: u16,
    /// The peer port (127.0.0.1).
    pub peer_port: u16,
    /// Served over TLS: the CA that signed its certificate, the certificate and its key.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Etcd {
    /// Start etcd, or `None` (the test skips, out loud) when it is not installed.
    pub fn start() -> Option<Etcd> {
        Etcd::start_with(None)
    }

    /// Start etcd serving its clients over TLS with `pki`'s server certificate (for
    /// 127.0.0.1), or `None` as [`Etcd::start`].
    pub fn start_tls(pki: &super::servers::Pki) -> Option<Etcd> {
        Etcd::start_with(Some((pki.ca.clone(), pki.cert.clone(), pki.key.clone())))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf, PathBuf)>) -> Option<Etcd> {
        if !Path::new(ETCD).exists() {
            super::skip::skip(&format!(
                "fleet test: {ETCD} is missing (Debian package etcd-server)"
            ));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut etcd = Etcd {
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
            tls,
        };
        // A port free a moment ago may be taken by another test before etcd binds it: try
        // again with others.
        for _ in 0..5 {
            etcd.client_port = super::servers::free_port();
            etcd.peer_port = super::servers::free_port();
            if etcd.try_spawn() {
                return Some(etcd);
            }
            let _ = std::fs::remove_dir_all(etcd.dir.path().join("data"));
        }
        panic!(
            "etcd did not start: {}",
            std::fs::read_to_string(etcd.log_path()).unwrap_or_default()
        );
    }

    /// The client URL, as a config's `[fleet] etcd` lists it.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// etcdctl's arguments to reach it: the endpoint, and with TLS the CA.
    fn endpoint_args(&self) -> Vec<String> {
        let mut args = vec!["--endpoints".to_owned(), self.url()];
        if let Some((ca, _, _)) = &self.tls {
            args.push(format!("--cacert={}", ca.display()));
        }
        args
    }

    /// The log etcd writes (its stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "etcd could not bind its ports again: {}",
            std::fs::read_to_string(self.log_path()).unwrap_or_default()
        );
    }

    /// Start etcd; `false` when a port was taken (it exited saying so).
    fn try_spawn(&mut self) -> bool {
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(ETCD);
        if let Some((_, cert, key)) = &self.tls {
            command
                .arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()));
        }
        let mut child = command
            .arg("--name=anycastd-test")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=anycastd-test={peer}"))
            .arg("--initial-cluster-state=new")
            // No metrics or pprof listener of its own: only the two ports above.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.healthy() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                if log.contains("address already in use") {
                    // Truncated, so that the next try's log is its own.
                    let _ = std::fs::write(self.log_path(), "");
                    return false;
                }
                panic!(
                    "etcd exited ({status}): {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy on {client} within 20 s: {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        true
    }

    /// Whether etcd answers a linearizable read (`etcdctl endpoint health`).
    pub fn healthy(&self) -> bool {
        Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .args(self.endpoint_args())
            .arg("--command-timeout=1s")
            .args(["endpoint", "health"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `etcdctl ARGS` against this member; its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .args(self.endpoint_args())
            .arg("--command-timeout=3s")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `etcdctl --user USER:PASSWORD ARGS` against this member: whether it succeeded, and its
    /// output (stdout and stderr).
    pub fn ctl_as(&self, user: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .args(self.endpoint_args())
            .args(["--command-timeout=3s", "--user", user])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The keys under `prefix` with their values.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self.ctl(&["get", "--prefix", prefix]);
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_owned(), c[1].to_owned()))
            .collect()
    }

    /// The store's revision: it grows with every write (a lease's keep-alive is none).
    pub fn revision(&self) -> i64 {
        let out = self.ctl(&["get", "/", "-w", "json"]);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        value["header"]["revision"].as_i64().unwrap_or(-1)
    }

    /// Send `signal` to etcd (SIGSTOP, SIGCONT).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGKILL etcd and reap it (its data stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same ports and data (after [`Etcd::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Start it again on the same ports with its data wiped (a new cluster).
    pub fn restart_wiped(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
        self.spawn();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a stopped (SIGSTOPped) process too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
