//! Runs the real `anycastd` binary as a child process for integration tests.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An exec check `name` that fails (saying `NAME is down`) while `DIR/NAME.down` exists,
/// polled every 200 ms.
pub fn flag_check(dir: &Path, name: &str) -> String {
    format!(
        r#"{{ name = "{name}", command = "/bin/sh", args = ["-c", "if [ -e {dir}/{name}.down ]; then echo '{name} is down' >&2; exit 1; fi"], interval = "200ms", timeout = "3s" }}"#,
        dir = dir.display()
    )
}

/// A running `anycastd run`.
pub struct Daemon {
    child: Option<Child>,
    /// Its stdout+stderr.
    pub log: PathBuf,
}

/// The sections every testbed config starts with: the journal and control socket in `dir`,
/// and vtysh pointed at the testbed (`vtysh_args`).
pub fn testbed_sections(dir: &Path, vtysh_args: &[String]) -> String {
    let args: Vec<String> = vtysh_args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[journal]\npath = {:?}\n\n[control]\nsocket = {:?}\n\n[frrouting]\nvtysh_args = [{}]\nvtysh_timeout = \"5s\"\n",
        dir.join("journal").display().to_string(),
        dir.join("ctl.sock").display().to_string(),
        args.join(", ")
    )
}

/// The README example as a config for a testbed: dns in the default VRF, ntp in VRF 123, checks
/// at `url` every 200 ms, journal in `dir`.
pub fn example_config(dir: &Path, url: &str, vtysh_args: &[String], extra: &str) -> PathBuf {
    let text = format!(
        r#"{sections}
[services.dns]
prefixes.frrouting = ["2001:db8::b19:bad:53", "203.0.113.53"]
checks.cabourotte = [{{ name = "dns", url = "{url}", interval = "200ms" }}]

[services.ntp]
prefixes.frrouting = [
    {{ prefix = "2001:db8::123:7e11:713e", vrf = "123" }},
    {{ prefix = "203.0.113.123", vrf = "123" }},
]
checks.cabourotte = [
    {{ name = "ntp_v6", url = "{url}", interval = "200ms" }},
    {{ name = "ntp_v4", url = "{url}", interval = "200ms" }},
]
{extra}"#,
        sections = testbed_sections(dir, vtysh_args),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What varies between the one-service configs of [`one_service_config`].
#[derive(Default)]
pub struct OneService<'a> {
    /// The journal's directory; `DIR/journal` when `None`.
    pub journal: Option<&'a Path>,
    /// Lines added under `[control]`.
    pub control: &'a str,
    /// Sections added before `[services.dns]`.
    pub sections: &'a str,
    /// Lines added under `[services.dns]`.
    pub service: &'a str,
}

/// `DIR/config.toml` with one service, `dns` (203.0.113.53), whose `checks.cabourotte` array
/// holds `checks`, and `DIR/vtysh`, an FRR with no BGP instance: nothing is ever announced,
/// every withdrawal is a no-op.
pub fn one_service_config(dir: &Path, checks: &str, spec: OneService) -> PathBuf {
    let vtysh = dir.join("vtysh");
    std::fs::write(&vtysh, "#!/bin/sh\necho '!'\n").unwrap();
    std::fs::set_permissions(&vtysh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let journal = spec
        .journal
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("journal"));
    let text = format!(
        "[journal]\npath = {:?}\n[control]\nsocket = {:?}\n{}{}[services.dns]\n{}prefixes.frrouting = [{{ prefix = \"203.0.113.53\", vtysh = {:?} }}]\nchecks.cabourotte = {checks}\n",
        journal.display().to_string(),
        dir.join("ctl.sock").display().to_string(),
        spec.control,
        spec.sections,
        spec.service,
        vtysh.display().to_string(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Daemon {
    /// Start `anycastd run -c CONFIG --log-format json`, output to `log`.
    pub fn start(config: &Path, log: &Path) -> Daemon {
        Daemon::start_with_env(config, log, &[])
    }

    /// The same, with extra environment variables.
    pub fn start_with_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(
            Command::new(env!("CARGO_BIN_EXE_anycastd")),
            config,
            log,
            env,
        )
    }

    /// The same in network namespace `netns` (`ip netns exec` runs the daemon as itself: the
    /// pid is the daemon's). Its file system is the test's.
    pub fn start_in_netns(netns: &str, config: &Path, log: &Path) -> Daemon {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_anycastd")]);
        Daemon::spawn(cmd, config, log, &[])
    }

    fn spawn(mut cmd: Command, config: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .envs(env.iter().copied())
            .args(["run", "-c"])
            .arg(config)
            .args(["--log-format", "json", "--log-level", "debug"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Send a signal.
    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), signal);
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait for the exit code (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "anycastd did not exit; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "log lacks {needle:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
