//! FRRouting as a [`Backend`]: `network` statements under `router bgp ASN [vrf V]`, written
//! through vtysh ([`control`]: vtysh processes, the running-config parser) in calls of at most
//! [`MAX_LINES`] lines, read back from `show running-config bgpd`, and shown by `show bgp ...
//! json` (advertised when a valid best path exists and a peer of its VRF and family is
//! established).

pub mod control;

use super::{Backend, BackendId, Change, Installed, PrefixKey, Shown, Snapshot};
use control::{address_family_line, router_line, RunningConfig, Vtysh, VtyshError};
use ipnet::IpNet;
use std::collections::HashMap;
use std::time::Duration;

/// At most this many lines go into one vtysh call (~190 ms for 1,000 lines on FRR 8.4).
pub const MAX_LINES: usize = 500;

/// How every vtysh is run (`[frrouting]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Arguments before the commands (`vtysh_args`, e.g. `--vty_socket DIR`).
    pub args: Vec<String>,
    /// Time limit of one vtysh process (`vtysh_timeout`).
    pub timeout: Duration,
    /// How often the writer reads FRR afresh and repairs drift (`reconcile_interval`).
    pub reconcile_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            args: Vec::new(),
            timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
        }
    }
}

/// One FRR, reached through one vtysh binary.
#[derive(Debug, Clone)]
pub struct Frr {
    id: BackendId,
    vtysh: Vtysh,
}

impl Frr {
    /// The FRR of backend `id` (its instance is the vtysh binary).
    pub fn new(id: &BackendId, settings: &Settings) -> Frr {
        Frr {
            id: id.clone(),
            vtysh: Vtysh {
                path: id.instance.clone().into(),
                args: settings.args.clone(),
                timeout: settings.timeout,
            },
        }
    }

    /// Its vtysh.
    pub fn vtysh(&self) -> &Vtysh {
        &self.vtysh
    }
}

impl Installed for RunningConfig {
    fn has_table(&self, vrf: &Option<String>) -> bool {
        self.instances.contains_key(vrf)
    }

    fn contains(&self, vrf: &Option<String>, prefix: &IpNet) -> bool {
        self.instances
            .get(vrf)
            .is_some_and(|i| i.networks.contains(prefix))
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            tables: self
                .instances
                .iter()
                .map(|(vrf, instance)| (vrf.clone(), instance.networks.clone()))
                .collect(),
        }
    }
}

impl Backend for Frr {
    type Installed = RunningConfig;
    type Error = VtyshError;

    fn id(&self) -> &BackendId {
        &self.id
    }

    async fn read(&self) -> Result<RunningConfig, VtyshError> {
        self.vtysh.running_config().await
    }

    fn batches(&self, _: &RunningConfig, changes: &[Change]) -> Vec<std::ops::Range<usize>> {
        batches(changes)
    }

    async fn apply(
        &self,
        installed: &RunningConfig,
        changes: &[Change],
        _: &[PrefixKey],
    ) -> Result<(), VtyshError> {
        let lines = command_lines(installed, changes).map_err(|vrf| VtyshError::Failed {
            path: self.vtysh.name(),
            code: -1,
            output: missing_instance(&vrf),
        })?;
        self.vtysh.run(&lines).await.map(drop)
    }

    async fn inspect(&self, prefixes: &[PrefixKey]) -> Result<Vec<Shown>, VtyshError> {
        let running = self.vtysh.running_config().await?;
        let mut valid = HashMap::new();
        for afi in ["ipv4", "ipv6"] {
            let text = self
                .vtysh
                .run(&[format!("show bgp vrf all {afi} unicast json")])
                .await?;
            valid.extend(valid_routes(&text));
        }
        let text = self
            .vtysh
            .run(&["show bgp vrf all summary json".to_owned()])
            .await?;
        let established = established_peers(&text);
        Ok(prefixes
            .iter()
            .map(|(vrf, prefix)| {
                let vrf_name = vrf.clone().unwrap_or_else(|| "default".to_owned());
                let afi = if prefix.addr().is_ipv6() {
                    "ipv6"
                } else {
                    "ipv4"
                };
                Shown {
                    configured: running.contains(vrf, prefix),
                    valid: valid
                        .get(&(vrf_name.clone(), prefix.to_string()))
                        .copied()
                        .unwrap_or(false),
                    established_peers: established.get(&(vrf_name, afi)).copied().unwrap_or(0),
                }
            })
            .collect())
    }

    fn missing_table(&self, vrf: &Option<String>) -> String {
        missing_instance(vrf)
    }

    fn unreadable(&self, error: &VtyshError) -> String {
        format!("cannot read FRR's running config: {error}")
    }

    fn not_applied(&self, announce: bool) -> String {
        if announce {
            "vtysh exited 0 but the network line is not in the running config".to_owned()
        } else {
            "vtysh exited 0 but the network line is still in the running config".to_owned()
        }
    }

    fn runtime_file(&self) -> Option<std::path::PathBuf> {
        Some(bgpd_socket(&self.vtysh.args))
    }

    fn daemon_name(&self) -> &'static str {
        "bgpd"
    }
}

/// Where bgpd's vty socket is, from vtysh's arguments: `--vty_socket DIR` (or the `-N NAME`
/// path space under FRR's run directory), else `/var/run/frr`. bgpd re-creates it whenever it
/// starts.
pub fn bgpd_socket(args: &[String]) -> std::path::PathBuf {
    let mut dir = std::path::PathBuf::from("/var/run/frr");
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if let Some(value) = word.strip_prefix("--vty_socket=") {
            dir = value.into();
        } else if word == "--vty_socket" {
            if let Some(value) = words.next() {
                dir = value.into();
            }
        } else if word == "-N" || word == "--pathspace" {
            if let Some(name) = words.next() {
                dir = std::path::Path::new("/var/run/frr").join(name);
            }
        }
    }
    dir.join("bgpd.vty")
}

fn missing_instance(vrf: &Option<String>) -> String {
    match vrf {
        Some(vrf) => format!(
            "no BGP instance for VRF {vrf} in FRR (router bgp ASN vrf {vrf}); anycastd does not create one"
        ),
        None => "no default BGP instance in FRR (router bgp ASN); anycastd does not create one"
            .to_owned(),
    }
}

/// The context of a change: its instance and address family.
fn context(change: &Change) -> (&Option<String>, bool) {
    (&change.vrf, change.prefix.addr().is_ipv6())
}

/// Split changes into calls of at most [`MAX_LINES`] lines (context lines included).
fn batches(changes: &[Change]) -> Vec<std::ops::Range<usize>> {
    // Counted as `command_lines` would write them (without formatting any): `configure
    // terminal`, two context lines whenever the instance or family changes, one per prefix.
    let mut batches = Vec::new();
    let mut start = 0;
    let mut lines = 0;
    for i in 0..changes.len() {
        let switches = i == start || context(&changes[i - 1]) != context(&changes[i]);
        let added = 1 + if switches { 2 } else { 0 };
        let base = if i == start { 1 } else { lines };
        if i > start && base + added > MAX_LINES {
            batches.push(start..i);
            start = i;
            lines = 1 + 3;
        } else {
            lines = base + added;
        }
    }
    if start < changes.len() {
        batches.push(start..changes.len());
    }
    batches
}

/// The vtysh lines of some changes: `configure terminal`, then for each run of the same
/// instance and family its context lines, then one `network`/`no network` each. `Err(vrf)`
/// when the running config has no instance for a change's VRF.
fn command_lines(
    installed: &RunningConfig,
    changes: &[Change],
) -> Result<Vec<String>, Option<String>> {
    let mut lines = vec!["configure terminal".to_owned()];
    let mut current: Option<(&Option<String>, bool)> = None;
    for change in changes {
        let here = context(change);
        if current != Some(here) {
            let asn = installed
                .instances
                .get(&change.vrf)
                .ok_or_else(|| change.vrf.clone())?
                .asn;
            lines.push(router_line(asn, &change.vrf));
            lines.push(address_family_line(&change.prefix).to_owned());
            current = Some(here);
        }
        if change.announce {
            lines.push(format!("network {}", change.prefix));
        } else {
            lines.push(format!("no network {}", change.prefix));
        }
    }
    Ok(lines)
}

/// From `show bgp vrf all ipv4|ipv6 unicast json`: (VRF, prefix) -> a valid best path exists.
/// Anything that is not the expected JSON yields nothing.
pub fn valid_routes(text: &str) -> HashMap<(String, String), bool> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let mut valid = HashMap::new();
    for (vrf, table) in json.as_object().into_iter().flatten() {
        for (prefix, paths) in table["routes"].as_object().into_iter().flatten() {
            let ok = paths.as_array().into_iter().flatten().any(|p| {
                p["valid"].as_bool() == Some(true) && p["bestpath"].as_bool() == Some(true)
            });
            valid.insert((vrf.clone(), prefix.clone()), ok);
        }
    }
    valid
}

/// From `show bgp vrf all summary json`: (VRF, family) -> established peers.
pub fn established_peers(text: &str) -> HashMap<(String, &'static str), usize> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let mut established = HashMap::new();
    for (vrf, families) in json.as_object().into_iter().flatten() {
        for (key, afi) in [("ipv4Unicast", "ipv4"), ("ipv6Unicast", "ipv6")] {
            let n = families[key]["peers"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, p)| p["state"].as_str() == Some("Established"))
                .count();
            established.insert((vrf.clone(), afi), n);
        }
    }
    established
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_bgpd_listens() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            bgpd_socket(&[]),
            std::path::Path::new("/var/run/frr/bgpd.vty")
        );
        assert_eq!(
            bgpd_socket(&args(&["--vty_socket", "/tmp/x/run", "--config_dir", "/e"])),
            std::path::Path::new("/tmp/x/run/bgpd.vty")
        );
        assert_eq!(
            bgpd_socket(&args(&["--vty_socket=/r"])),
            std::path::Path::new("/r/bgpd.vty")
        );
        assert_eq!(
            bgpd_socket(&args(&["-N", "blue"])),
            std::path::Path::new("/var/run/frr/blue/bgpd.vty")
        );
    }
    use control::Instance;

    fn change(vrf: Option<&str>, prefix: &str, announce: bool) -> Change {
        Change {
            vrf: vrf.map(str::to_owned),
            prefix: prefix.parse().unwrap(),
            announce,
        }
    }

    fn installed() -> RunningConfig {
        let mut rc = RunningConfig::default();
        rc.instances.insert(
            None,
            Instance {
                asn: 65536,
                networks: Default::default(),
            },
        );
        rc.instances.insert(
            Some("123".into()),
            Instance {
                asn: 65537,
                networks: Default::default(),
            },
        );
        rc
    }

    #[test]
    fn lines_switch_instance_and_family_only_when_they_change() {
        let changes = vec![
            change(None, "203.0.113.53/32", false),
            change(None, "203.0.113.54/32", false),
            change(Some("123"), "2001:db8::1/128", true),
        ];
        assert_eq!(
            command_lines(&installed(), &changes).unwrap(),
            [
                "configure terminal",
                "router bgp 65536",
                "address-family ipv4 unicast",
                "no network 203.0.113.53/32",
                "no network 203.0.113.54/32",
                "router bgp 65537 vrf 123",
                "address-family ipv6 unicast",
                "network 2001:db8::1/128",
            ]
        );
        assert_eq!(
            command_lines(&installed(), &[change(Some("x"), "10.0.0.0/8", true)]),
            Err(Some("x".to_owned()))
        );
    }

    #[test]
    fn batches_are_as_full_as_the_line_limit_allows_with_mixed_contexts() {
        // Instances and families alternate in runs of varying length.
        let changes: Vec<_> = (0..2000u32)
            .map(|i| {
                let vrf = if (i / 7) % 3 == 0 { Some("123") } else { None };
                let prefix = if (i / 5) % 2 == 0 {
                    format!("10.{}.{}.0/24", i / 256, i % 256)
                } else {
                    format!("2001:db8:{i:x}::/48")
                };
                change(vrf, &prefix, i % 2 == 0)
            })
            .collect();
        let batches = batches(&changes);
        assert_eq!(
            batches.iter().flat_map(Clone::clone).collect::<Vec<_>>(),
            (0..changes.len()).collect::<Vec<_>>()
        );
        let rc = installed();
        for (n, batch) in batches.iter().enumerate() {
            assert!(command_lines(&rc, &changes[batch.clone()]).unwrap().len() <= MAX_LINES);
            if let Some(next) = batches.get(n + 1) {
                let grown = batch.start..next.start + 1;
                assert!(command_lines(&rc, &changes[grown]).unwrap().len() > MAX_LINES);
            }
        }
    }

    #[test]
    fn a_thousand_prefixes_fit_in_three_calls_of_at_most_five_hundred_lines() {
        let changes: Vec<_> = (0..1000u32)
            .map(|i| change(None, &format!("10.{}.{}.0/24", i / 256, i % 256), true))
            .collect();
        let batches = batches(&changes);
        assert_eq!(batches.len(), 3);
        let rc = installed();
        assert!(batches
            .iter()
            .all(|b| command_lines(&rc, &changes[b.clone()]).unwrap().len() <= MAX_LINES));
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 1000);
    }
}
