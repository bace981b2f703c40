//! FRR in the config file ([`BackendLoader`]): the `[frrouting]` section (`vtysh_args`,
//! `vtysh_timeout`, `reconcile_interval`, `vty_sockets`) and the items of
//! `prefixes.frrouting` (`vtysh`: the binary that reaches the FRR; `vrf`: the VRF), with
//! their schema. Every message is the one the loader always gave.

use super::{Settings, KIND};
use crate::config::{
    valid_vrf_name, BackendLoader, BackendSection, DaemonSettings, KindItem, Node, Report, Value,
};
use crate::routing::{BackendId, Place, Route};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The vtysh of a prefix that names none.
pub const DEFAULT_VTYSH: &str = "/usr/bin/vtysh";

/// FRR's part of the config file.
pub struct Loader;

impl DaemonSettings for Settings {
    const KIND: crate::routing::BackendKind = KIND;
}

impl BackendLoader for Loader {
    fn key(&self) -> &'static str {
        "frrouting"
    }

    fn heading(&self) -> &'static str {
        "[frrouting]"
    }

    fn section(&self, item: Option<&mut KindItem<'_, '_, '_>>) -> Option<Arc<dyn BackendSection>> {
        let defaults = Settings::default();
        let Some(item) = item else {
            return Some(Arc::new(defaults));
        };
        let args = match item.take("vtysh_args") {
            Some(n) => item.strings(n, "frrouting.vtysh_args"),
            None => Some(Vec::new()),
        };
        let timeout = match item.take("vtysh_timeout") {
            Some(n) => item.duration(n, "frrouting.vtysh_timeout"),
            None => Some(defaults.timeout),
        };
        let reconcile_interval = match item.take("reconcile_interval") {
            Some(n) => item.duration(n, "frrouting.reconcile_interval"),
            None => Some(defaults.reconcile_interval),
        };
        let vty_sockets = match item.take("vty_sockets") {
            Some(n) => vty_sockets(item, n),
            None => Some(BTreeMap::new()),
        };
        Some(Arc::new(Settings {
            args: args?,
            timeout: timeout?,
            reconcile_interval: reconcile_interval?,
            vty_sockets: vty_sockets?,
        }))
    }

    fn prefix(&self, item: &mut KindItem<'_, '_, '_>) -> Option<(BackendId, Option<Place>)> {
        let (vtysh, vrf) = (item.take("vtysh"), item.take("vrf"));
        let vtysh = match vtysh {
            Some(n) => {
                let path = item.key_path("vtysh");
                match item.string(n, &path) {
                    Some(s) if s.is_empty() => {
                        item.problem(n, &path, "must not be empty");
                        None
                    }
                    other => other.map(PathBuf::from),
                }
            }
            None => Some(PathBuf::from(DEFAULT_VTYSH)),
        };
        let vrf = match vrf {
            Some(n) => vrf_name(item, n),
            None => Some(None),
        };
        Some((BackendId::frr(vtysh?), Some(Place::of(vrf?))))
    }

    fn prefix_text(&self, route: &Route) -> String {
        match route.place.name() {
            Some(vrf) => format!("{} (VRF {vrf})", route.prefix),
            None => route.prefix.to_string(),
        }
    }

    /// A `vty_sockets` key that no prefix's `vtysh` is: a typo, which would leave restart
    /// detection as it was.
    fn check_use(&self, section: Option<&Node>, routes: &[&Route], report: &mut Report<'_>) {
        let used: std::collections::BTreeSet<&str> = routes
            .iter()
            .filter(|p| p.backend.kind == KIND)
            .map(|p| p.backend.instance.as_str())
            .collect();
        for (key, offset) in vty_socket_keys(section) {
            if !used.contains(key.as_str()) {
                report.problem(
                    offset,
                    format!("frrouting.vty_sockets.{key:?}"),
                    format!(
                        "no prefix reaches FRR through this vtysh (prefixes.frrouting items name theirs with vtysh; the default is {DEFAULT_VTYSH})"
                    ),
                );
            }
        }
    }

    fn section_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        generator.subschema_for::<schema::Frrouting>()
    }

    fn prefix_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        generator.subschema_for::<Vec<crate::config::schema::Item<schema::FrrPrefix>>>()
    }
}

/// A prefix's VRF name; the empty string means the default VRF (as in the original).
fn vrf_name(item: &mut KindItem<'_, '_, '_>, node: &Node) -> Option<Option<String>> {
    let path = item.key_path("vrf");
    let name = item.string(node, &path)?;
    if name.is_empty() {
        return Some(None);
    }
    if !valid_vrf_name(&name) {
        item.problem(
            node,
            &path,
            format!(
                "VRF name {name:?} must be 1-36 characters of A-Z a-z 0-9 _ . - (it is pasted into vtysh commands)"
            ),
        );
        return None;
    }
    Some(Some(name))
}

/// `[frrouting] vty_sockets`: a table from a vtysh binary (an absolute path, as the
/// prefixes name it) to the directory of its bgpd's vty socket (what FRR's `--vty_socket`
/// takes), for a vtysh that hides it (a wrapper script).
fn vty_sockets(item: &mut KindItem<'_, '_, '_>, node: &Node) -> Option<BTreeMap<PathBuf, PathBuf>> {
    let Value::Table(entries) = &node.value else {
        item.problem(
            node,
            "frrouting.vty_sockets",
            format!(
                "must be a table of vtysh path = vty socket directory, not {}",
                node.value.kind()
            ),
        );
        return None;
    };
    let mut map = BTreeMap::new();
    let mut ok = true;
    for (key, value) in entries {
        let path = format!("frrouting.vty_sockets.{:?}", key.name);
        if !key.name.starts_with('/') {
            item.key_problem(
                key,
                &path,
                "the key must be the absolute path of a vtysh, as the prefixes' vtysh key names it",
            );
            ok = false;
            continue;
        }
        match item.string(value, &path) {
            Some(dir) if dir.starts_with('/') => {
                map.insert(PathBuf::from(&key.name), PathBuf::from(dir));
            }
            Some(_) => {
                item.problem(
                    value,
                    &path,
                    "must be the absolute path of the directory of bgpd.vty (what --vty_socket takes)",
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(map)
}

/// The keys of `[frrouting] vty_sockets` that [`vty_sockets`] takes (an absolute vtysh to
/// an absolute directory), with their offsets, in file order: whether the rest of the
/// section is valid or not.
fn vty_socket_keys(section: Option<&Node>) -> Vec<(String, usize)> {
    let Some(Value::Table(keys)) = section.map(|n| &n.value) else {
        return Vec::new();
    };
    let Some((_, node)) = keys.iter().find(|(k, _)| k.name == "vty_sockets") else {
        return Vec::new();
    };
    let Value::Table(entries) = &node.value else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|(key, value)| {
            key.name.starts_with('/')
                && matches!(&value.value, Value::String(dir) if dir.starts_with('/'))
        })
        .map(|(key, _)| (key.name.clone(), key.span.start))
        .collect()
}

/// The schema of FRR's section and items, as written.
mod schema {
    use crate::config::schema::Duration;
    use schemars::JsonSchema;
    use std::collections::BTreeMap;

    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct Frrouting {
        /// Arguments put before the commands of every vtysh call.
        vtysh_args: Option<Vec<String>>,
        vtysh_timeout: Option<Duration>,
        reconcile_interval: Option<Duration>,
        /// The directory of bgpd's vty socket (what --vty_socket names) of a vtysh that
        /// hides it, keyed by the vtysh's absolute path.
        vty_sockets: Option<BTreeMap<String, String>>,
    }

    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct FrrPrefix {
        prefix: String,
        vrf: Option<String>,
        vtysh: Option<String>,
    }
}
