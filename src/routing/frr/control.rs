//! FRR's control interface, vtysh: running it and reading FRR's running config.
//!
//! vtysh is executed directly (no shell), one `-c` argument per line, in its own process
//! group so that a timeout kills it and anything it started. Facts relied on (FRR 8.4):
//! exit code 0 on success and 1 on error, error text on stdout (`% Unknown command: ...`);
//! execution stops at the first failing line and keeps what came before; `show running-config`
//! is the only source that lists configured `network` statements.

use ipnet::IpNet;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How to run one vtysh binary.
#[derive(Debug, Clone)]
pub struct Vtysh {
    /// The binary.
    pub path: PathBuf,
    /// Arguments before the commands (`[frrouting] vtysh_args`).
    pub args: Vec<String>,
    /// Time limit of one process.
    pub timeout: Duration,
}

/// Why a vtysh call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtyshError {
    /// It could not be started.
    #[error("vtysh {path}: cannot run: {reason}")]
    Spawn {
        /// The binary.
        path: String,
        /// Why.
        reason: String,
    },
    /// It ran longer than the timeout and was killed.
    #[error("vtysh {path}: no exit within {} ms (killed)", timeout.as_millis())]
    Timeout {
        /// The binary.
        path: String,
        /// The limit.
        timeout: Duration,
    },
    /// vtysh answers but FRR's BGP daemon does not (`show daemons` lacks `bgpd`): the
    /// running config then has no `router bgp` at all, which is not "no instance".
    #[error("bgpd is not running (vtysh {path} answers, FRR's BGP daemon does not)")]
    BgpdNotRunning {
        /// The binary.
        path: String,
    },
    /// It exited non-zero.
    #[error("vtysh {path}: exit {code}: {output}")]
    Failed {
        /// The binary.
        path: String,
        /// Exit code (-1 when killed by a signal).
        code: i32,
        /// stdout and stderr, trimmed, on one line.
        output: String,
    },
    /// A VRF has no BGP instance (anycastd never creates one).
    #[error("{}", super::missing_instance(vrf.as_deref()))]
    NoInstance {
        /// The VRF (`None`: the default one).
        vrf: Option<String>,
    },
    /// vtysh took a change that the running config does not show.
    #[error("vtysh exited 0 but the network line {} in the running config", if *announce { "is not" } else { "is still" })]
    NotApplied {
        /// An announcement (missing) or a withdrawal (still there).
        announce: bool,
    },
}

impl VtyshError {
    /// The error output of a failed call (empty for other errors).
    pub fn output(&self) -> &str {
        match self {
            VtyshError::Failed { output, .. } => output,
            _ => "",
        }
    }
}

/// Largest vtysh output read (a running config of 100,000 prefixes is ~3 MB); more kills
/// the process and fails the call, so a broken vtysh cannot exhaust memory.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// Read a pipe to its end, or `None` once it passes `limit` bytes.
async fn read_bounded(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    limit: usize,
    on_overflow: impl Fn(),
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    // On the heap: a buffer inside the future would make every vtysh future (and the tasks
    // awaiting it) that much larger on the stack.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => return Some(out),
            Ok(n) => {
                if out.len() + n > limit {
                    // Stop the writer, or it would block on the full pipe until the timeout.
                    on_overflow();
                    return None;
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(_) => return Some(out),
        }
    }
}

/// Cap on what is kept of vtysh's output in error texts.
const MAX_ERROR_TEXT: usize = 600;

fn one_line(text: &str) -> String {
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str(" ...");
    }
    line
}

/// vtysh's metric families, shown once an FRR writer started.
pub const METRIC_FAMILIES: crate::observe::metrics::Families = &[
    (
        "anycastd_vtysh_calls_total",
        "counter",
        "vtysh processes run.",
    ),
    (
        "anycastd_vtysh_errors_total",
        "counter",
        "vtysh processes that failed (exit code, timeout, not runnable).",
    ),
    (
        "anycastd_vtysh_duration_seconds",
        "summary",
        "Time spent in vtysh processes (_sum) and processes timed (_count).",
    ),
];

/// The counters of a vtysh binary, at 0 (at its writer's start).
pub fn zero_counters(vtysh: &str) {
    for name in [
        "anycastd_vtysh_calls_total",
        "anycastd_vtysh_errors_total",
        "anycastd_vtysh_duration_seconds_sum",
        "anycastd_vtysh_duration_seconds_count",
    ] {
        crate::observe::metrics::count(name, &[("vtysh", vtysh)], 0.0);
    }
}

/// A vtysh call finished, in the metrics.
fn vtysh_call(vtysh: &str, took: std::time::Duration, ok: bool) {
    use crate::observe::metrics::count;
    count("anycastd_vtysh_calls_total", &[("vtysh", vtysh)], 1.0);
    count(
        "anycastd_vtysh_duration_seconds_sum",
        &[("vtysh", vtysh)],
        took.as_secs_f64(),
    );
    count(
        "anycastd_vtysh_duration_seconds_count",
        &[("vtysh", vtysh)],
        1.0,
    );
    if !ok {
        count("anycastd_vtysh_errors_total", &[("vtysh", vtysh)], 1.0);
    }
}

impl Vtysh {
    /// Display name of the binary.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Run `lines` (each becomes one `-c`); returns stdout on exit 0.
    pub async fn run(&self, lines: &[String]) -> Result<String, VtyshError> {
        let started = std::time::Instant::now();
        let result = self.run_unmetered(lines).await;
        vtysh_call(&self.name(), started.elapsed(), result.is_ok());
        result
    }

    async fn run_unmetered(&self, lines: &[String]) -> Result<String, VtyshError> {
        let mut command = tokio::process::Command::new(&self.path);
        command
            .args(&self.args)
            .args(lines.iter().flat_map(|line| ["-c", line.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| VtyshError::Spawn {
            path: self.name(),
            reason: e.to_string(),
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        let kill_group = || {
            // The whole group: vtysh and anything it started.
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group();
            return Err(VtyshError::Spawn {
                path: self.name(),
                reason: "no output pipes".into(),
            });
        };
        let run = async {
            let (out, err, status) = tokio::join!(
                read_bounded(stdout, MAX_OUTPUT_BYTES, kill_group),
                read_bounded(stderr, MAX_OUTPUT_BYTES, kill_group),
                child.wait()
            );
            (out, err, status)
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok((Some(out), Some(err), Ok(status))) => {
                let stdout = String::from_utf8_lossy(&out).into_owned();
                if status.success() {
                    Ok(stdout)
                } else {
                    let stderr = String::from_utf8_lossy(&err);
                    Err(VtyshError::Failed {
                        path: self.name(),
                        code: status.code().unwrap_or(-1),
                        output: one_line(&format!("{stdout} {stderr}")),
                    })
                }
            }
            Ok((None, _, _)) | Ok((_, None, _)) => {
                kill_group();
                Err(VtyshError::Failed {
                    path: self.name(),
                    code: -1,
                    output: format!("output larger than {MAX_OUTPUT_BYTES} bytes (killed)"),
                })
            }
            Ok((_, _, Err(e))) => Err(VtyshError::Spawn {
                path: self.name(),
                reason: e.to_string(),
            }),
            Err(_) => {
                // The child is dropped with the future (kill_on_drop, reaped by tokio).
                kill_group();
                Err(VtyshError::Timeout {
                    path: self.name(),
                    timeout: self.timeout,
                })
            }
        }
    }

    /// Read and parse `show running-config bgpd`, and `show daemons` in the same call: with
    /// bgpd down, FRR 8.4's vtysh still prints a running config (exit 0, no `router bgp`), and
    /// only the daemon list tells that bgpd is not running. A vtysh without `show daemons` is
    /// asked for the running config alone.
    pub async fn running_config(&self) -> Result<RunningConfig, VtyshError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        static NO_SHOW_DAEMONS: AtomicBool = AtomicBool::new(false);
        let mut lines = vec!["show running-config bgpd".to_owned()];
        if !NO_SHOW_DAEMONS.load(Ordering::Relaxed) {
            lines.push("show daemons".to_owned());
        }
        let text = match self.run(&lines).await {
            Err(e) if lines.len() == 2 && e.output().contains("show daemons") => {
                NO_SHOW_DAEMONS.store(true, Ordering::Relaxed);
                self.run(&lines[..1]).await?
            }
            other => other?,
        };
        let config = RunningConfig::parse(&text);
        if config.bgpd_running == Some(false) {
            return Err(VtyshError::BgpdNotRunning { path: self.name() });
        }
        Ok(config)
    }
}

/// One `router bgp ASN [vrf V]` instance and its `network` statements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// Its AS number.
    pub asn: u32,
    /// Configured `network` statements (both address families).
    pub networks: BTreeSet<IpNet>,
    /// The route-map a `network` statement names (`network P route-map M`), if any.
    pub route_maps: BTreeMap<IpNet, String>,
}

/// What FRR's running config says about BGP, keyed by VRF (`None` = default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunningConfig {
    /// Instances by VRF.
    pub instances: BTreeMap<Option<String>, Instance>,
    /// Whether bgpd runs, from a `show daemons` line after the config (`None`: not asked).
    pub bgpd_running: Option<bool>,
    /// The route-maps, by name: their lines, each trimmed, an entry's line as `permit 10`
    /// (from `route-map NAME permit 10`) followed by the entry's own lines.
    pub route_maps: BTreeMap<String, Vec<String>>,
}

/// FRR's daemons, as `show daemons` names them.
const FRR_DAEMONS: &[&str] = &[
    "zebra", "mgmtd", "bgpd", "ripd", "ripngd", "ospfd", "ospf6d", "isisd", "babeld", "pimd",
    "pim6d", "ldpd", "nhrpd", "eigrpd", "sharpd", "pbrd", "staticd", "bfdd", "fabricd", "vrrpd",
    "pathd", "watchfrr",
];

impl RunningConfig {
    /// Parse the text of `show running-config` (or its `bgpd` part). Views
    /// (`router bgp ASN view NAME`) are ignored.
    pub fn parse(text: &str) -> RunningConfig {
        let mut instances = BTreeMap::new();
        let mut current: Option<Option<String>> = None;
        let mut in_unicast_af = false;
        let mut ended = false;
        let mut bgpd_running = None;
        let mut route_maps: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current_map: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed == "end" {
                ended = true;
                continue;
            }
            if ended {
                // `show daemons` after the config: " zebra bgpd staticd".
                let words: Vec<&str> = trimmed.split_whitespace().collect();
                if !words.is_empty() && words.iter().all(|w| FRR_DAEMONS.contains(w)) {
                    bgpd_running = Some(words.contains(&"bgpd"));
                }
                continue;
            }
            if !line.starts_with(' ') {
                // Top level: a new block starts (or a `!`, `exit`, `end` ends one).
                current = None;
                current_map = None;
                in_unicast_af = false;
                let words: Vec<&str> = trimmed.split_whitespace().collect();
                if let ["route-map", name, entry @ ..] = words.as_slice() {
                    route_maps
                        .entry((*name).to_owned())
                        .or_default()
                        .push(entry.join(" "));
                    current_map = Some((*name).to_owned());
                    continue;
                }
                if let ["router", "bgp", asn, rest @ ..] = words.as_slice() {
                    let Ok(asn) = asn.parse::<u32>() else {
                        continue;
                    };
                    let vrf = match rest {
                        [] => None,
                        ["vrf", name] => Some((*name).to_owned()),
                        _ => continue,
                    };
                    instances.insert(
                        vrf.clone(),
                        Instance {
                            asn,
                            networks: BTreeSet::new(),
                            route_maps: BTreeMap::new(),
                        },
                    );
                    current = Some(vrf);
                }
                continue;
            }
            if let Some(map) = &current_map {
                if let Some(lines) = route_maps.get_mut(map) {
                    lines.push(trimmed.to_owned());
                }
                continue;
            }
            let Some(vrf) = &current else { continue };
            if trimmed.starts_with("address-family ") {
                in_unicast_af = trimmed == "address-family ipv4 unicast"
                    || trimmed == "address-family ipv6 unicast";
                continue;
            }
            if trimmed == "exit-address-family" {
                in_unicast_af = false;
                continue;
            }
            if in_unicast_af {
                if let Some(rest) = trimmed.strip_prefix("network ") {
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    if let Some(Ok(net)) = words.first().map(|w| w.parse::<IpNet>()) {
                        if let Some(instance) = instances.get_mut(vrf) {
                            instance.networks.insert(net);
                            if let Some(i) = words.iter().position(|w| *w == "route-map") {
                                if let Some(map) = words.get(i + 1) {
                                    instance.route_maps.insert(net, (*map).to_owned());
                                }
                            }
                        }
                    }
                }
            }
        }
        RunningConfig {
            instances,
            bgpd_running,
            route_maps,
        }
    }
}

/// The `router bgp` line for an instance.
pub fn router_line(asn: u32, vrf: &Option<String>) -> String {
    match vrf {
        Some(vrf) => format!("router bgp {asn} vrf {vrf}"),
        None => format!("router bgp {asn}"),
    }
}

/// The address family line for a prefix.
pub fn address_family_line(prefix: &IpNet) -> &'static str {
    match prefix {
        IpNet::V4(_) => "address-family ipv4 unicast",
        IpNet::V6(_) => "address-family ipv6 unicast",
    }
}

/// `vtysh` binary name for messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Building configuration...\n\nCurrent configuration:\n!\nfrr version 8.4.4\n!\nrouter bgp 65536\n bgp router-id 203.0.113.179\n neighbor 192.0.2.2 remote-as external\n !\n address-family ipv4 unicast\n  network 203.0.113.53/32\n  network 203.0.113.99/32 route-map X\n  redistribute static\n exit-address-family\n !\n address-family ipv6 unicast\n  network 2001:db8::b19:bad:53/128\n exit-address-family\n !\n address-family l2vpn evpn\n  network 10.0.0.0/8\n exit-address-family\nexit\n!\nrouter bgp 65537 vrf 123\n address-family ipv6 unicast\n  network 2001:db8::123:7e11:713e/128\n exit-address-family\nexit\n!\nrouter bgp 65538 view v\n address-family ipv4 unicast\n  network 198.51.100.0/24\n exit-address-family\nexit\n!\nend\n";

    #[test]
    fn instances_and_their_unicast_networks_are_read() {
        let rc = RunningConfig::parse(SAMPLE);
        assert_eq!(rc.instances.len(), 2, "the view is ignored");
        let default = &rc.instances[&None];
        assert_eq!(default.asn, 65536);
        let nets: Vec<String> = default.networks.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            nets,
            [
                "203.0.113.53/32",
                "203.0.113.99/32",
                "2001:db8::b19:bad:53/128"
            ]
        );
        let vrf = &rc.instances[&Some("123".to_owned())];
        assert_eq!(vrf.asn, 65537);
        assert_eq!(vrf.networks.len(), 1);
    }

    #[test]
    fn route_maps_and_the_maps_network_lines_name_are_read() {
        let text = "router bgp 65536\n address-family ipv4 unicast\n  network 203.0.113.53/32 route-map anycastd-0a1b2c3d\n  network 203.0.113.54/32\n exit-address-family\nexit\n!\nroute-map anycastd-0a1b2c3d permit 10\n set as-path prepend 65536 65536\n set metric 1000\nexit\n!\nroute-map OPS deny 5\n match ip address prefix-list X\nexit\n!\nroute-map OPS permit 20\nexit\n!\nend\n";
        let rc = RunningConfig::parse(text);
        let default = &rc.instances[&None];
        assert_eq!(default.networks.len(), 2);
        assert_eq!(
            default.route_maps,
            BTreeMap::from([(
                "203.0.113.53/32".parse().unwrap(),
                "anycastd-0a1b2c3d".to_owned()
            )])
        );
        assert_eq!(
            rc.route_maps["anycastd-0a1b2c3d"],
            [
                "permit 10",
                "set as-path prepend 65536 65536",
                "set metric 1000"
            ]
        );
        assert_eq!(
            rc.route_maps["OPS"],
            ["deny 5", "match ip address prefix-list X", "permit 20"]
        );
    }

    #[test]
    fn the_daemon_list_after_the_config_tells_whether_bgpd_runs() {
        let up = format!("{SAMPLE} zebra bgpd staticd\n");
        assert_eq!(RunningConfig::parse(&up).bgpd_running, Some(true));
        assert_eq!(RunningConfig::parse(&up).instances.len(), 2);
        // FRR 8.4 with bgpd stopped: exit 0, a config without BGP, and the daemon list.
        let down = "Building configuration...\n\nCurrent configuration:\n!\nhostname vm\nservice integrated-vtysh-config\n!\nend\n zebra staticd\n";
        let rc = RunningConfig::parse(down);
        assert_eq!(rc.bgpd_running, Some(false));
        assert!(rc.instances.is_empty());
        assert_eq!(RunningConfig::parse(SAMPLE).bgpd_running, None);
    }

    #[test]
    fn an_empty_config_has_no_instances() {
        assert_eq!(RunningConfig::parse("!\nend\n"), RunningConfig::default());
    }

    #[test]
    fn error_text_is_one_bounded_line() {
        assert_eq!(
            one_line("% Unknown command:\n  network x\n"),
            "% Unknown command: network x"
        );
        assert!(one_line(&"x ".repeat(1000)).len() <= MAX_ERROR_TEXT + 4);
    }
}
