//! FRRouting as a [`Backend`]: `network` statements under `router bgp ASN [vrf V]`, written
//! through vtysh ([`control`]: vtysh processes, the running-config parser) in calls of at most
//! [`MAX_LINES`] lines, read back from `show running-config bgpd`, and shown by `show bgp ...
//! json` (advertised when a valid best path exists and a peer of its VRF and family is
//! established). A prefix announced with attributes names one of anycastd's route-maps on
//! its network line ([`route_map`]).

pub mod config;
pub mod control;
pub mod kind;
pub mod route_map;

pub use kind::KIND;

use super::{
    Backend, BackendId, Change, Installed, Place, PrefixKey, RuntimeFile, RuntimeFileUnknown,
    Shown, Snapshot,
};
use crate::bgp::Attributes;
use control::{address_family_line, router_line, RunningConfig, Vtysh, VtyshError};
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// At most this many lines go into one vtysh call (~190 ms for 1,000 lines on FRR 8.4).
pub const MAX_LINES: usize = 500;

/// How every vtysh is run (`[frrouting]`).
#[derive(Debug, Clone, PartialEq)]
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
    /// The writer's pass being applied, as [`Backend::batches`] saw it: its last call
    /// removes the maps the pass leaves unused, unless a call before it failed.
    pass: Arc<Mutex<Pass>>,
}

/// The changes of the pass being applied, and whether one of its calls failed.
#[derive(Debug, Default)]
struct Pass {
    changes: Vec<Change>,
    failed: bool,
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
            pass: Arc::default(),
        }
    }

    fn pass(&self) -> std::sync::MutexGuard<'_, Pass> {
        self.pass.lock().unwrap_or_else(|p| p.into_inner())
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

    /// The plain route for a network line without a route-map or naming an operator's map
    /// (which [`Installed::installed_with`] never takes for what is wanted).
    fn attributes(&self, place: &Place, prefix: &IpNet) -> Attributes {
        self.announced_with(place, prefix).unwrap_or_default()
    }

    fn installed_with(&self, place: &Place, prefix: &IpNet, attributes: &Attributes) -> bool {
        self.announced_with(place, prefix).as_ref() == Some(attributes)
    }

    fn snapshot(&self) -> Snapshot {
        let mut attributes = std::collections::BTreeMap::new();
        for (vrf, instance) in &self.instances {
            let place = Place::of(vrf.clone());
            for prefix in instance.route_maps.keys() {
                if let Some(a) = self.announced_with(&place, prefix) {
                    attributes.insert((place.clone(), *prefix), a);
                }
            }
        }
        Snapshot {
            attributes,
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

    fn batches(
        &self,
        installed: &RunningConfig,
        changes: &[Change],
    ) -> Vec<std::ops::Range<usize>> {
        let removals = unused_maps(installed, changes).len();
        *self.pass() = Pass {
            changes: changes.to_vec(),
            failed: false,
        };
        batches(installed, changes, removals)
    }

    /// Defines the maps the batch names that FRR lacks, switches the network lines, and, in
    /// the pass's last call when none before it failed, removes anycastd's maps that no
    /// network line names any more (after the switches, so never a map in use).
    async fn apply(
        &self,
        installed: &RunningConfig,
        changes: &[Change],
        _: &[PrefixKey],
    ) -> Result<(), VtyshError> {
        let removals = {
            let pass = self.pass();
            if pass.changes.ends_with(changes) && !pass.failed {
                unused_maps(installed, &pass.changes)
            } else {
                Vec::new()
            }
        };
        let lines =
            command_lines(installed, changes, &removals).map_err(|vrf| VtyshError::Failed {
                path: self.vtysh.name(),
                code: -1,
                output: missing_instance(vrf.as_deref()),
            })?;
        let result = self.vtysh.run(&lines).await.map(drop);
        if result.is_err() {
            self.pass().failed = true;
        }
        result
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
        let mut advertised = Vec::with_capacity(prefixes.len());
        for chunk in prefixes.chunks(MAX_LINES) {
            let lines: Vec<String> = chunk
                .iter()
                .map(|(vrf, prefix)| show_prefix_line(vrf, prefix))
                .collect();
            // What the best path carries is shown when it can be read: a vtysh that does
            // not answer these lines (a wrapper that allows fewer commands) leaves it out
            // rather than the rest of `status`.
            let shown = match self.vtysh.run(&lines).await {
                Ok(text) => advertised_attributes(&text),
                Err(e) => {
                    tracing::debug!(vtysh = %self.vtysh.name(), error = %e, "cannot show the advertised attributes");
                    Vec::new()
                }
            };
            if shown.len() == chunk.len() {
                advertised.extend(shown);
            } else {
                // Not one answer per prefix: nothing can be told apart.
                advertised.extend(std::iter::repeat_n(None, chunk.len()));
            }
        }
        Ok(prefixes
            .iter()
            .zip(advertised)
            .map(|((vrf, prefix), advertised)| {
                let vrf_name = vrf.name().unwrap_or("default").to_owned();
                let afi = if prefix.addr().is_ipv6() {
                    "ipv6"
                } else {
                    "ipv4"
                };
                let installed = running.announced_with(vrf, prefix);
                Shown {
                    advertised: advertised.map(|a| med_as_set(a, installed.as_ref())),
                    installed,
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

impl RunningConfig {
    /// What a prefix's network line announces it with: the plain route without a route-map,
    /// the attributes of anycastd's map it names ([`route_map::attributes_of`]); `None` when
    /// it is not there or names a map that is not anycastd's (an operator's, one changed by
    /// hand, a missing one).
    pub fn announced_with(&self, place: &Place, prefix: &IpNet) -> Option<Attributes> {
        let instance = self.instances.get(&place.clone().into_name())?;
        if !instance.networks.contains(prefix) {
            return None;
        }
        match instance.route_maps.get(prefix) {
            None => Some(Attributes::plain()),
            Some(map) => route_map::attributes_of(map, self.route_maps.get(map)?, instance.asn),
        }
    }
}

/// The map a change names on its network line, and the lines that define it when FRR does
/// not have it as anycastd defines it (`no route-map` first when a map of that name has
/// other content: changed by hand). `None` for a withdrawal, the plain route, or a VRF
/// without an instance.
fn map_of(installed: &RunningConfig, change: &Change) -> Option<(String, Vec<String>)> {
    if !change.announce || change.attributes.is_plain() {
        return None;
    }
    let asn = installed
        .instances
        .get(&change.place.clone().into_name())?
        .asn;
    let name = route_map::name(&change.attributes, asn);
    let define = match installed.route_maps.get(&name) {
        Some(lines) if *lines == route_map::body(&change.attributes, asn) => Vec::new(),
        Some(_) => std::iter::once(format!("no route-map {name}"))
            .chain(route_map::definition(&change.attributes, asn))
            .collect(),
        None => route_map::definition(&change.attributes, asn),
    };
    Some((name, define))
}

/// anycastd's maps ([`route_map::is_own`]) that no network line names once `changes` are
/// applied: to be removed after them.
fn unused_maps(installed: &RunningConfig, changes: &[Change]) -> Vec<String> {
    let changed: BTreeSet<(Option<String>, IpNet)> = changes
        .iter()
        .map(|c| (c.place.clone().into_name(), c.prefix))
        .collect();
    let mut used: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| map_of(installed, c).map(|(name, _)| name))
        .collect();
    for (vrf, instance) in &installed.instances {
        for (prefix, map) in &instance.route_maps {
            if !changed.contains(&(vrf.clone(), *prefix)) {
                used.insert(map.clone());
            }
        }
    }
    installed
        .route_maps
        .iter()
        .filter(|(name, lines)| route_map::is_own(name, lines) && !used.contains(*name))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The `show bgp` line of one prefix.
fn show_prefix_line(vrf: &Place, prefix: &IpNet) -> String {
    let afi = if prefix.addr().is_ipv6() {
        "ipv6"
    } else {
        "ipv4"
    };
    match vrf.name() {
        Some(vrf) => format!("show bgp vrf {vrf} {afi} unicast {prefix} json"),
        None => format!("show bgp {afi} unicast {prefix} json"),
    }
}

/// From the answers of `show bgp [vrf V] ipv4|ipv6 unicast P json`, one JSON object per
/// prefix in order: what each one's best path carries beyond the plain route (`None`: no
/// best path). The AS path of a route this FRR originates holds only the prepends; FRR
/// gives such a route MED 0 when no map sets one, so MED 0 reads as none.
pub fn advertised_attributes(text: &str) -> Vec<Option<Attributes>> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .map(|answer| {
            let best = answer["paths"]
                .as_array()?
                .iter()
                .find(|p| p["bestpath"]["overall"].as_bool() == Some(true))?;
            let prepended: usize = best["aspath"]["segments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["list"].as_array().map_or(0, Vec::len))
                .sum();
            let words = |field: &str| -> Vec<String> {
                best[field]["string"]
                    .as_str()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            };
            Some(
                Attributes {
                    as_path_prepend: u8::try_from(prepended).unwrap_or(u8::MAX),
                    med: best["metric"]
                        .as_u64()
                        .filter(|m| *m != 0)
                        .and_then(|m| u32::try_from(m).ok()),
                    communities: words("community")
                        .iter()
                        .filter_map(|w| route_map::community_of_word(w))
                        .collect(),
                    large_communities: words("largeCommunity")
                        .iter()
                        .filter_map(|w| w.parse().ok())
                        .collect(),
                }
                .normalized(),
            )
        })
        .collect()
}

/// What the best path carries, with the MED its map sets: FRR shows MED 0 as it shows no MED
/// ([`advertised_attributes`] reads both as none), so a map that sets MED 0 is taken as
/// advertising it (else `deprefer = { med = 0 }` would read as drift). Only MED 0: any other
/// MED FRR shows as it is.
fn med_as_set(mut advertised: Attributes, installed: Option<&Attributes>) -> Attributes {
    if advertised.med.is_none() && installed.is_some_and(|i| i.med == Some(0)) {
        advertised.med = Some(0);
    }
    advertised
}

/// The context of a change: its instance and address family.
fn context(change: &Change) -> (&Place, bool) {
    (&change.place, change.prefix.addr().is_ipv6())
}

/// Split changes into calls of at most [`MAX_LINES`] lines (context lines, the maps they
/// define, and `removals` lines kept free for the removal of unused maps included).
fn batches(
    installed: &RunningConfig,
    changes: &[Change],
    removals: usize,
) -> Vec<std::ops::Range<usize>> {
    // Counted as `command_lines` would write them: `configure terminal`, the lines of each
    // map a batch defines (once per batch), two context lines whenever the instance or
    // family changes, one per prefix; the removals (and two lines back to the config node)
    // are kept free in every batch, since the last one is not known yet.
    let limit = MAX_LINES.saturating_sub(if removals > 0 { removals + 2 } else { 0 });
    let mut batches = Vec::new();
    let mut start = 0;
    let mut lines = 1;
    let mut defined: BTreeSet<String> = BTreeSet::new();
    let mut i = 0;
    while i < changes.len() {
        let switches = i == start || context(&changes[i - 1]) != context(&changes[i]);
        let map = map_of(installed, &changes[i]).filter(|(name, _)| !defined.contains(name));
        let added =
            1 + if switches { 2 } else { 0 } + map.as_ref().map_or(0, |(_, define)| define.len());
        if i > start && lines + added > limit {
            batches.push(start..i);
            start = i;
            lines = 1;
            defined.clear();
            continue;
        }
        lines += added;
        if let Some((name, _)) = map {
            defined.insert(name);
        }
        i += 1;
    }
    if start < changes.len() {
        batches.push(start..changes.len());
    }
    batches
}

/// The vtysh lines of some changes: `configure terminal`, the maps they name that FRR lacks,
/// then for each run of the same instance and family its context lines, then one `network`
/// (with its map, if any) or `no network` each; then, back at the config node, `no
/// route-map` for each of `removals`. `Err(vrf)` when the running config has no instance
/// for a change's VRF. (In a pass of several calls, a map that an earlier call defined and
/// this one names again is entered again, with the same lines: FRR then re-evaluates the
/// routes that name it after its delay timer and finds them unchanged.)
fn command_lines(
    installed: &RunningConfig,
    changes: &[Change],
    removals: &[String],
) -> Result<Vec<String>, Option<String>> {
    let mut lines = vec!["configure terminal".to_owned()];
    let mut defined: BTreeSet<String> = BTreeSet::new();
    let mut maps: Vec<Option<String>> = Vec::with_capacity(changes.len());
    for change in changes {
        let map = map_of(installed, change);
        if let Some((name, define)) = &map {
            if defined.insert(name.clone()) {
                lines.extend(define.iter().cloned());
            }
        }
        maps.push(map.map(|(name, _)| name));
    }
    let mut current: Option<(&Place, bool)> = None;
    for (change, map) in changes.iter().zip(maps) {
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
        match (change.announce, map) {
            (true, Some(map)) => lines.push(format!("network {} route-map {map}", change.prefix)),
            (true, None) => lines.push(format!("network {}", change.prefix)),
            (false, _) => lines.push(format!("no network {}", change.prefix)),
        }
    }
    if !removals.is_empty() {
        if current.is_some() {
            lines.push("exit-address-family".to_owned());
            lines.push("exit".to_owned());
        }
        lines.extend(removals.iter().map(|name| format!("no route-map {name}")));
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
                ..Default::default()
            },
        );
        rc.instances.insert(
            Some("123".into()),
            Instance {
                asn: 65537,
                ..Default::default()
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
            command_lines(&installed(), &changes, &[]).unwrap(),
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
            command_lines(&installed(), &[change(Some("x"), "10.0.0.0/8", true)], &[]),
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
        let rc = installed();
        let batches = batches(&rc, &changes, 0);
        assert_eq!(
            batches.iter().flat_map(Clone::clone).collect::<Vec<_>>(),
            (0..changes.len()).collect::<Vec<_>>()
        );
        for (n, batch) in batches.iter().enumerate() {
            assert!(
                command_lines(&rc, &changes[batch.clone()], &[])
                    .unwrap()
                    .len()
                    <= MAX_LINES
            );
            if let Some(next) = batches.get(n + 1) {
                let grown = batch.start..next.start + 1;
                assert!(command_lines(&rc, &changes[grown], &[]).unwrap().len() > MAX_LINES);
            }
        }
    }

    #[test]
    fn a_thousand_prefixes_fit_in_three_calls_of_at_most_five_hundred_lines() {
        let changes: Vec<_> = (0..1000u32)
            .map(|i| change(None, &format!("10.{}.{}.0/24", i / 256, i % 256), true))
            .collect();
        let rc = installed();
        let batches = batches(&rc, &changes, 0);
        assert_eq!(batches.len(), 3);
        assert!(batches
            .iter()
            .all(|b| command_lines(&rc, &changes[b.clone()], &[]).unwrap().len() <= MAX_LINES));
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 1000);
    }

    fn deprefer() -> Attributes {
        Attributes {
            as_path_prepend: 3,
            med: Some(1000),
            communities: vec![crate::bgp::Community(65000, 666)],
            large_communities: vec![crate::bgp::LargeCommunity(65000, 1, 666)],
        }
    }

    fn at_level(vrf: Option<&str>, prefix: &str, attributes: Attributes) -> Change {
        Change {
            attributes,
            ..change(vrf, prefix, true)
        }
    }

    /// The running config FRR shows after `lines` (for the parts these tests use).
    fn with_map(
        mut rc: RunningConfig,
        vrf: Option<&str>,
        prefix: &str,
        a: &Attributes,
    ) -> RunningConfig {
        let instance = rc.instances.get_mut(&vrf.map(str::to_owned)).unwrap();
        let asn = instance.asn;
        let prefix: IpNet = prefix.parse().unwrap();
        instance.networks.insert(prefix);
        if !a.is_plain() {
            let name = route_map::name(a, asn);
            instance.route_maps.insert(prefix, name.clone());
            rc.route_maps.insert(name, route_map::body(a, asn));
        }
        rc
    }

    #[test]
    fn a_level_switch_defines_the_map_names_it_and_removes_the_one_left_unused() {
        let rc = with_map(installed(), None, "203.0.113.53/32", &deprefer());
        let old = route_map::name(&deprefer(), 65536);
        let drain = deprefer().with(crate::bgp::GRACEFUL_SHUTDOWN);
        let new = route_map::name(&drain, 65536);
        let changes = [at_level(None, "203.0.113.53/32", drain.clone())];
        let removals = unused_maps(&rc, &changes);
        assert_eq!(removals, std::slice::from_ref(&old));
        let lines = command_lines(&rc, &changes, &removals).unwrap();
        let mut expected = vec!["configure terminal".to_owned()];
        expected.extend(route_map::definition(&drain, 65536));
        expected.extend([
            "router bgp 65536".to_owned(),
            "address-family ipv4 unicast".to_owned(),
            format!("network 203.0.113.53/32 route-map {new}"),
            "exit-address-family".to_owned(),
            "exit".to_owned(),
            format!("no route-map {old}"),
        ]);
        assert_eq!(lines, expected);
        // Back to plain: the network line without a map; a map FRR has is not defined again.
        let rc = with_map(installed(), None, "203.0.113.53/32", &drain);
        let rc = with_map(rc, None, "203.0.113.54/32", &drain);
        let changes = [at_level(None, "203.0.113.53/32", Attributes::plain())];
        assert!(
            unused_maps(&rc, &changes).is_empty(),
            "203.0.113.54/32 still names it"
        );
        assert_eq!(
            command_lines(&rc, &changes, &[]).unwrap(),
            [
                "configure terminal",
                "router bgp 65536",
                "address-family ipv4 unicast",
                "network 203.0.113.53/32",
            ]
        );
        let changes = [at_level(None, "203.0.113.54/32", drain.clone())];
        assert_eq!(
            command_lines(&rc, &changes, &[]).unwrap()[1..3],
            ["router bgp 65536", "address-family ipv4 unicast"],
            "already defined as anycastd defines it"
        );
        // A withdrawal leaves its map unused too.
        let rc = with_map(installed(), None, "203.0.113.53/32", &drain);
        let changes = [change(None, "203.0.113.53/32", false)];
        assert_eq!(unused_maps(&rc, &changes), std::slice::from_ref(&new));
    }

    #[test]
    fn an_operators_route_map_is_never_anycastds_never_removed_and_never_taken_for_wanted() {
        let mut rc = with_map(installed(), None, "203.0.113.53/32", &Attributes::plain());
        let prefix: IpNet = "203.0.113.53/32".parse().unwrap();
        let instance = rc.instances.get_mut(&None).unwrap();
        instance.route_maps.insert(prefix, "OPS".into());
        rc.route_maps
            .insert("OPS".into(), route_map::body(&deprefer(), 65536));
        // Same content as anycastd's, under a name that is not anycastd's: not ours.
        let place = Place::default();
        assert!(rc.contains(&place, &prefix));
        assert!(!rc.installed_with(&place, &prefix, &deprefer()));
        assert!(!rc.installed_with(&place, &prefix, &Attributes::plain()));
        let changes = [at_level(None, "203.0.113.53/32", Attributes::plain())];
        assert!(
            unused_maps(&rc, &changes).is_empty(),
            "OPS is never removed"
        );
        assert_eq!(
            command_lines(&rc, &changes, &[])
                .unwrap()
                .last()
                .map(String::as_str),
            Some("network 203.0.113.53/32")
        );
        // anycastd's own map in another instance of another AS is not this instance's set.
        let rc = with_map(installed(), Some("123"), "203.0.113.123/32", &deprefer());
        let place = Place::named("123");
        let prefix: IpNet = "203.0.113.123/32".parse().unwrap();
        assert!(rc.installed_with(&place, &prefix, &deprefer()));
        assert_eq!(rc.snapshot().attributes[&(place, prefix)], deprefer());
    }

    #[test]
    fn a_map_changed_by_hand_is_replaced_before_it_is_named_again() {
        let mut rc = installed();
        let name = route_map::name(&deprefer(), 65536);
        rc.route_maps.insert(
            name.clone(),
            vec!["permit 10".into(), "set metric 5".into()],
        );
        let lines =
            command_lines(&rc, &[at_level(None, "203.0.113.53/32", deprefer())], &[]).unwrap();
        assert_eq!(lines[1], format!("no route-map {name}"));
        assert_eq!(lines[2], format!("route-map {name} permit 10"));
    }

    #[test]
    fn batches_count_the_maps_they_define_and_keep_room_for_the_removals() {
        let levels: Vec<Attributes> = (0..40u32)
            .map(|i| Attributes {
                med: Some(i + 1),
                ..deprefer()
            })
            .collect();
        let changes: Vec<_> = (0..1000u32)
            .map(|i| {
                at_level(
                    None,
                    &format!("10.{}.{}.0/24", i / 256, i % 256),
                    levels[(i % 40) as usize].clone(),
                )
            })
            .collect();
        let rc = installed();
        let removals: Vec<String> = (0..7).map(|i| format!("anycastd-0000000{i}")).collect();
        let batches = batches(&rc, &changes, removals.len());
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 1000);
        for batch in &batches {
            let lines = command_lines(&rc, &changes[batch.clone()], &removals).unwrap();
            assert!(lines.len() <= MAX_LINES, "{}", lines.len());
        }
    }

    #[test]
    fn a_map_that_sets_med_0_is_advertised_with_med_0_though_frr_shows_none() {
        let med = |m: Option<u32>| Attributes {
            as_path_prepend: 3,
            med: m,
            ..Attributes::plain()
        };
        // `set metric 0`: FRR's `"metric":0` (read as none) is the MED the map sets.
        assert_eq!(med_as_set(med(None), Some(&med(Some(0)))), med(Some(0)));
        // No map MED, or another one: as shown.
        assert_eq!(med_as_set(med(None), Some(&med(None))), med(None));
        assert_eq!(med_as_set(med(None), Some(&med(Some(5)))), med(None));
        assert_eq!(med_as_set(med(Some(5)), Some(&med(Some(0)))), med(Some(5)));
        assert_eq!(med_as_set(med(None), None), med(None));
    }

    #[test]
    fn the_advertised_attributes_are_read_from_the_best_path_of_each_answer() {
        let shown = r#"{"prefix":"203.0.113.53/32","paths":[{"aspath":{"string":"65536 65536 65536","segments":[{"type":"as-sequence","list":[65536,65536,65536]}],"length":3},"metric":1000,"valid":true,"bestpath":{"overall":true},"community":{"string":"65000:666 graceful-shutdown","list":["65000:666","gracefulShutdown"]},"largeCommunity":{"string":"65000:1:666","list":["65000:1:666"]}}]}
{
}
{"prefix":"2001:db8::1/128","paths":[{"aspath":{"string":"Local","segments":[],"length":0},"metric":0,"valid":true,"bestpath":{"overall":true}}]}
"#;
        assert_eq!(
            advertised_attributes(shown),
            [
                Some(deprefer().with(crate::bgp::GRACEFUL_SHUTDOWN)),
                None,
                Some(Attributes::plain())
            ]
        );
    }
}
