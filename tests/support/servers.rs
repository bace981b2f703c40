//! Real servers on 127.0.0.1 for the built-in checks: nginx (HTTP and HTTPS, with a test CA
//! made by openssl) and dnsmasq (DNS over UDP and TCP). Each runs in the foreground from a
//! temporary directory and is killed by its PID when dropped. Tests that need one get `None`
//! (after recording why, see `support::skip`) when the binary is missing, unless
//! `ANYCASTD_TEST_REQUIRE_ALL=1` (set by `scripts/test --all` and `.ci/run`), which makes a
//! missing server a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `binary` exists; if not, `None` after saying so (or a panic in CI).
fn require(binary: &str, what: &str) -> Option<()> {
    if Path::new(binary).exists() {
        return Some(());
    }
    let reason = format!("{binary} is missing (Debian package {what})");
    super::skip::skip(&format!("server test: {reason}"));
    None
}

/// A TCP port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_for_tcp(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "server not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate it signed, for `dns.example` and 127.0.0.1, and the
/// same certificate expired since yesterday.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub expired: PathBuf,
}

impl Pki {
    /// Make a CA and a server certificate it signed in `dir` (`None`, said out loud, when
    /// openssl is missing).
    pub fn make_in(dir: &Path) -> Option<Pki> {
        require("/usr/bin/openssl", "openssl")?;
        Some(Pki::make(dir))
    }

    fn make(dir: &Path) -> Pki {
        let p = |f: &str| dir.join(f);
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=anycastd test CA",
            ])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        std::fs::write(
            p("ext.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:dns.example,IP:127.0.0.1\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=dns.example",
            ])
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")));
        for (days, out) in [("2", "server.pem"), ("-1", "expired.pem")] {
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", days])
                .arg("-in")
                .arg(p("server.csr"))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-CAcreateserial")
                .arg("-extfile")
                .arg(p("ext.cnf"))
                .arg("-out")
                .arg(p(out)));
        }
        Pki {
            ca: p("ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
            expired: p("expired.pem"),
        }
    }
}

/// nginx serving `www/` over HTTP and HTTPS. `/` answers 503 while `www/down` exists;
/// `/redirect` is a 301; a request with `Host: special.example` gets 204.
pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
    /// HTTPS with the expired certificate.
    pub expired_port: u16,
    pub pki: Pki,
}

impl Nginx {
    pub fn start() -> Option<Nginx> {
        require("/usr/sbin/nginx", "nginx-light")?;
        require("/usr/bin/openssl", "openssl")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("www")).unwrap();
        std::fs::create_dir(d.join("tmp")).unwrap();
        let pki = Pki::make(d);
        let (port, tls_port, expired_port) = (free_port(), free_port(), free_port());
        let conf = format!(
            r#"user root;
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port} default_server;
        listen 127.0.0.1:{tls_port} ssl default_server;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {d}/www;
        location / {{
            if (-f $document_root/down) {{ return 503; }}
        }}
        location = /redirect {{ return 301 /health; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name special.example;
        location / {{ return 204; }}
    }}
    server {{
        listen 127.0.0.1:{expired_port} ssl;
        ssl_certificate {expired};
        ssl_certificate_key {key};
        root {d}/www;
    }}
}}
"#,
            d = d.display(),
            cert = pki.cert.display(),
            key = pki.key.display(),
            expired = pki.expired.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let log = d.join("error.log");
        let mut child = Command::new("/usr/sbin/nginx")
            .arg("-e")
            .arg(&log)
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_tcp(port, &mut child, &log);
        wait_for_tcp(tls_port, &mut child, &log);
        wait_for_tcp(expired_port, &mut child, &log);
        Some(Nginx {
            child,
            dir,
            port,
            tls_port,
            expired_port,
            pki,
        })
    }

    /// Serve `body` at `/NAME`.
    pub fn put(&self, name: &str, body: &[u8]) {
        std::fs::write(self.dir.path().join("www").join(name), body).unwrap();
    }

    /// Answer 503 everywhere (`true`) or serve files again.
    pub fn down(&self, down: bool) {
        let flag = self.dir.path().join("www/down");
        if down {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // nginx's master ends its workers on SIGTERM (they are its children, not ours).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq answering from its own records only: `check.local AAAA 2001:db8::15:600d` and
/// `both.local` (A 192.0.2.1 and 192.0.2.2), NXDOMAIN for other `.local` names, REFUSED for
/// names it has no server for, and no answer (in time) for `fail.test`, whose upstream does
/// not exist.
pub struct Dnsmasq {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Dnsmasq {
    pub fn start() -> Option<Dnsmasq> {
        Dnsmasq::start_on(free_port())
    }

    /// Start on `port` (a restart on the port a stopped one used).
    pub fn start_on(port: u16) -> Option<Dnsmasq> {
        Dnsmasq::start_in(None, "127.0.0.1", port)
    }

    /// Start in network namespace `netns` (through `ip netns exec`, which execs dnsmasq in
    /// place: the child's PID is dnsmasq's), on `address`:`port`.
    pub fn start_in(netns: Option<&str>, address: &str, port: u16) -> Option<Dnsmasq> {
        require("/usr/sbin/dnsmasq", "dnsmasq-base")?;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dnsmasq.log");
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/dnsmasq"]);
                c
            }
            None => Command::new("/usr/sbin/dnsmasq"),
        };
        let mut child = command
            .arg(format!("--listen-address={address}"))
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--user=root",
                "--cache-size=0",
                "--host-record=check.local,2001:db8::15:600d",
                "--host-record=both.local,192.0.2.1",
                "--host-record=both.local,192.0.2.2",
                "--local=/local/",
                // An upstream that does not exist: port 9 of 127.0.0.1 answers nothing.
                "--server=/fail.test/127.0.0.1#9",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--log-facility={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        match netns {
            None => wait_for_tcp(port, &mut child, &log),
            Some(_) => {
                // Not reachable from here: wait for its log line instead.
                let deadline = Instant::now() + Duration::from_secs(10);
                while !std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("started")
                {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("dnsmasq exited ({status})");
                    }
                    assert!(Instant::now() < deadline, "dnsmasq did not start");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Some(Dnsmasq { child, dir, port })
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
