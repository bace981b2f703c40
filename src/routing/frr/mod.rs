//! FRRouting as a [`Backend`]: `network` statements under `router bgp ASN [vrf V]`, written
//! through vtysh ([`control`]: vtysh processes, the running-config parser) in calls of at most
//! [`MAX_LINES`] lines, read back from `show running-config bgpd`, and shown by `show bgp ...
//! json` (advertised when a valid best path exists and a peer of its VRF and family is
//! established).

pub mod control;
pub mod kind;

pub use kind::KIND;

use super::{
    Backend, BackendId, Change, Installed, Place, PrefixKey, RuntimeFile, RuntimeFileUnknown,
    Shown, Snapshot,
};
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
    /// The vty socket directory of a vtysh that hides it (`vty_sockets`).
    pub vty_sockets: std::collections::BTreeMap<std::path::PathBuf, std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            args: Vec::new(),
            timeout: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(30),
            vty_sockets: std::collections::BTreeMap::new(),
        }
    }
}

/// One FRR, reached through one vtysh binary.
#[derive(Debug, Clone)]
pub struct Frr {
    id: BackendId,
    vtysh: Vtysh,
    /// The vty socket directory `[frrouting] vty_sockets` gives this vtysh.
    vty_socket: Option<std::path::PathBuf>,
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
            vty_socket: settings
                .vty_sockets
                .get(std::path::Path::new(&id.instance))
                .cloned(),
        }
    }

    /// Its vtysh.
    pub fn vtysh(&self) -> &Vtysh {
        &self.vtysh
    }
}

impl Installed for RunningConfig {
    fn has_table(&self, place: &Place) -> bool {
        self.instances.contains_key(&place.clone().into_name())
    }

    fn contains(&self, place: &Place, prefix: &IpNet) -> bool {
        self.instances
            .get(&place.clone().into_name())
            .is_some_and(|i| i.networks.contains(prefix))
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            attributes: Default::default(),
            tables: self
                .instances
                .iter()
                .map(|(vrf, instance)| (Place::of(vrf.clone()), instance.networks.clone()))
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
            output: missing_instance(vrf.as_deref()),
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
                let vrf_name = vrf.name().unwrap_or("default").to_owned();
                let afi = if prefix.addr().is_ipv6() {
                    "ipv6"
                } else {
                    "ipv4"
                };
                Shown {
                    advertised: None,
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

    fn missing_table(&self, place: &Place) -> VtyshError {
        VtyshError::NoInstance {
            vrf: place.name().map(str::to_owned),
        }
    }

    fn not_applied(&self, announce: bool) -> VtyshError {
        VtyshError::NotApplied { announce }
    }

    fn runtime_file(&self) -> Result<Option<RuntimeFile>, RuntimeFileUnknown> {
        let hint = format!(
            "set [frrouting] vty_sockets = {{ {:?} = \"DIR\" }}, DIR being the --vty_socket of its bgpd",
            self.vtysh.path.display().to_string()
        );
        match vty_socket(
            &self.vtysh.path,
            &self.vtysh.args,
            self.vty_socket.as_deref(),
        ) {
            Ok((dir, origin)) => Ok(Some(RuntimeFile {
                path: dir.join("bgpd.vty"),
                origin,
                hint,
            })),
            Err(reason) => Err(RuntimeFileUnknown { reason, hint }),
        }
    }
}

/// Where the bgpd that `vtysh` (run with `args`) reaches has its vty socket directory, and
/// how that was found out: `configured` (`[frrouting] vty_sockets`), else vtysh's
/// arguments (`--vty_socket`, `-N`), else, when `vtysh` is a script (a wrapper), the
/// literal `--vty_socket DIR` or `-N NAME` it passes on, else FRR's default. A script that
/// names it in a way that cannot be read (a variable, two different ones) is an error: the
/// default would watch another bgpd (the host's own, beside the wrapper's).
pub fn vty_socket(
    vtysh: &std::path::Path,
    args: &[String],
    configured: Option<&std::path::Path>,
) -> Result<(std::path::PathBuf, &'static str), String> {
    if let Some(dir) = configured {
        return Ok((dir.to_owned(), "[frrouting] vty_sockets"));
    }
    if let Some(dir) = socket_dir_option(args.iter().map(String::as_str)) {
        return Ok((dir, "vtysh_args"));
    }
    match script_words(vtysh) {
        Some(words) => {
            let mut found: Vec<std::path::PathBuf> = Vec::new();
            let mut words = words.iter().map(String::as_str).peekable();
            while words.peek().is_some() {
                let Some(dir) = socket_dir_option(&mut words) else {
                    break;
                };
                let text = dir.display().to_string();
                if text.contains(['$', '`']) {
                    return Err(format!(
                        "{} is a script that names its vty socket through a variable ({text})",
                        vtysh.display()
                    ));
                }
                if !found.contains(&dir) {
                    found.push(dir);
                }
            }
            match found.as_slice() {
                [] => Ok((
                    default_dir(),
                    "FRR's default (the script names no --vty_socket or -N)",
                )),
                [dir] => Ok((dir.clone(), "the wrapper script's --vty_socket or -N")),
                _ => Err(format!(
                    "{} is a script that names more than one vty socket directory",
                    vtysh.display()
                )),
            }
        }
        None => Ok((default_dir(), "FRR's default")),
    }
}

fn default_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("/var/run/frr")
}

/// The words of `path` when it is a script (`#!`, at most 64 KiB), comments left out and
/// quotes taken off; `None` for a binary or a file that cannot be read.
fn script_words(path: &std::path::Path) -> Option<Vec<String>> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut text)
        .ok()?;
    if !text.starts_with(b"#!") {
        return None;
    }
    let text = String::from_utf8_lossy(&text);
    Some(
        text.lines()
            .skip(1)
            // A word that starts with `#` starts a comment, to the end of its line.
            .flat_map(|line| line.split_whitespace().take_while(|w| !w.starts_with('#')))
            .map(|word| word.trim_matches(|c| c == '\'' || c == '"').to_owned())
            .collect(),
    )
}

/// The vty socket directory the first `--vty_socket`/`-N` option among `words` gives (the
/// words up to it and its value are consumed).
fn socket_dir_option<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<std::path::PathBuf> {
    while let Some(word) = words.next() {
        if let Some(value) = word.strip_prefix("--vty_socket=") {
            return Some(value.into());
        } else if word == "--vty_socket" {
            return words.next().map(Into::into);
        } else if let Some(name) = word.strip_prefix("--pathspace=") {
            return Some(default_dir().join(name));
        } else if word == "-N" || word == "--pathspace" {
            return words.next().map(|name| default_dir().join(name));
        } else if let Some(name) = word.strip_prefix("-N").filter(|n| !n.is_empty()) {
            return Some(default_dir().join(name));
        }
    }
    None
}

/// The words of a VRF without a BGP instance.
pub fn missing_instance(vrf: Option<&str>) -> String {
    match vrf {
        Some(vrf) => format!(
            "no BGP instance for VRF {vrf} in FRR (router bgp ASN vrf {vrf}); anycastd does not create one"
        ),
        None => "no default BGP instance in FRR (router bgp ASN); anycastd does not create one"
            .to_owned(),
    }
}

/// The context of a change: its instance and address family.
fn context(change: &Change) -> (&Place, bool) {
    (&change.place, change.prefix.addr().is_ipv6())
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
    let mut current: Option<(&Place, bool)> = None;
    for change in changes {
        let here = context(change);
        if current != Some(here) {
            let vrf = change.place.clone().into_name();
            let asn = installed
                .instances
                .get(&vrf)
                .ok_or_else(|| vrf.clone())?
                .asn;
            lines.push(router_line(asn, &vrf));
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
    use std::path::{Path, PathBuf};

    #[test]
    fn where_bgpd_listens() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let binary = Path::new("/nonexistent/vtysh");
        let dir = |args: &[String], configured: Option<&Path>| {
            vty_socket(binary, args, configured).map(|(d, _)| d)
        };
        assert_eq!(dir(&[], None), Ok(PathBuf::from("/var/run/frr")));
        assert_eq!(
            dir(
                &args(&["--vty_socket", "/tmp/x/run", "--config_dir", "/e"]),
                None
            ),
            Ok(PathBuf::from("/tmp/x/run"))
        );
        assert_eq!(
            dir(&args(&["--vty_socket=/r"]), None),
            Ok(PathBuf::from("/r"))
        );
        assert_eq!(
            dir(&args(&["-N", "blue"]), None),
            Ok(PathBuf::from("/var/run/frr/blue"))
        );
        assert_eq!(
            dir(&args(&["-N", "blue"]), Some(Path::new("/c"))),
            Ok(PathBuf::from("/c"))
        );
    }

    /// A wrapper script's own `--vty_socket`/`-N`, literal, is read from it; one through a
    /// variable, or two different ones, cannot be known; one naming none reaches FRR's
    /// default.
    #[test]
    fn where_a_wrapper_scripts_bgpd_listens() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let found = |path: &Path| vty_socket(path, &[], None).map(|(d, _)| d);
        let plain = script(
            "plain",
            "#!/bin/sh\n# a comment --vty_socket /nowhere\nexec /usr/bin/vtysh --vty_socket '/run/frr/ns1' \"$@\" # not -N x\n",
        );
        assert_eq!(found(&plain), Ok(PathBuf::from("/run/frr/ns1")));
        let equals = script(
            "equals",
            "#!/bin/bash\nexec vtysh --vty_socket=/run/x \"$@\"\n",
        );
        assert_eq!(found(&equals), Ok(PathBuf::from("/run/x")));
        let pathspace = script(
            "pathspace",
            "#!/bin/sh\nexec ip netns exec blue /usr/bin/vtysh -N blue \"$@\"\n",
        );
        assert_eq!(found(&pathspace), Ok(PathBuf::from("/var/run/frr/blue")));
        let netns = script("netns", "#!/bin/sh\nexec ip netns exec blue vtysh \"$@\"\n");
        assert_eq!(found(&netns), Ok(PathBuf::from("/var/run/frr")));
        let variable = script(
            "variable",
            "#!/bin/sh\nD=/run/frr/ns1\nexec vtysh --vty_socket \"$D\" \"$@\"\n",
        );
        let error = found(&variable).unwrap_err();
        assert!(error.contains("through a variable ($D)"), "{error}");
        let two = script(
            "two",
            "#!/bin/sh\nif [ -n \"$A\" ]; then exec vtysh -N a \"$@\"; fi\nexec vtysh -N b \"$@\"\n",
        );
        assert!(found(&two).unwrap_err().contains("more than one"));
        // The configured directory wins over the script's.
        assert_eq!(
            vty_socket(&variable, &[], Some(Path::new("/run/frr/ns1"))).map(|(d, _)| d),
            Ok(PathBuf::from("/run/frr/ns1"))
        );
    }
    use control::Instance;

    fn change(vrf: Option<&str>, prefix: &str, announce: bool) -> Change {
        Change {
            attributes: Default::default(),
            place: vrf.into(),
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
