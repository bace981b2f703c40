//! BIRD in the config file ([`BackendLoader`]): the `[bird]` section (`include_dir`,
//! `timeout`, `reconcile_interval`) and the items of `prefixes.bird` (`socket`: BIRD's
//! control socket; `protocol`: the static protocol, by default by the prefix's family),
//! the rules across them (a protocol has one family and one socket), and their schema.
//! Every message is the one the loader always gave.

use super::{default_protocol, Settings, DEFAULT_SOCKET, KIND};
use crate::config::{BackendLoader, BackendSection, DaemonSettings, KindItem, Report, RouteAt};
use crate::routing::{BackendId, Place};
use ipnet::IpNet;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// BIRD's part of the config file.
pub struct Loader;

/// A BIRD symbol anycastd accepts as a protocol name.
fn valid_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl DaemonSettings for Settings {
    const KIND: crate::routing::BackendKind = KIND;
}

impl BackendLoader for Loader {
    fn key(&self) -> &'static str {
        "bird"
    }

    fn heading(&self) -> &'static str {
        "[bird]"
    }

    fn section(&self, item: Option<&mut KindItem<'_, '_, '_>>) -> Option<Arc<dyn BackendSection>> {
        let defaults = Settings::default();
        let Some(item) = item else {
            return Some(Arc::new(defaults));
        };
        let include_dir = match item.take("include_dir") {
            Some(n) => match item.string(n, "bird.include_dir") {
                Some(s) if !s.starts_with('/') || s.len() < 2 => {
                    item.problem(
                        n,
                        "bird.include_dir",
                        "must be an absolute path of a directory (not /)",
                    );
                    None
                }
                Some(s) if s.contains(['*', '?', '[', '"', ' ']) => {
                    item.problem(
                        n,
                        "bird.include_dir",
                        "must not contain * ? [ \" or spaces (it goes into BIRD's include pattern)",
                    );
                    None
                }
                other => other.map(|s| PathBuf::from(s.trim_end_matches('/'))),
            },
            None => Some(defaults.include_dir),
        };
        let timeout = match item.take("timeout") {
            Some(n) => item.duration(n, "bird.timeout"),
            None => Some(defaults.timeout),
        };
        let reconcile_interval = match item.take("reconcile_interval") {
            Some(n) => item.duration(n, "bird.reconcile_interval"),
            None => Some(defaults.reconcile_interval),
        };
        Some(Arc::new(Settings {
            include_dir: include_dir?,
            timeout: timeout?,
            reconcile_interval: reconcile_interval?,
        }))
    }

    fn prefix(&self, item: &mut KindItem<'_, '_, '_>) -> Option<(BackendId, Option<Place>)> {
        let (socket, protocol) = (item.take("socket"), item.take("protocol"));
        let socket = match socket {
            Some(n) => {
                let path = item.key_path("socket");
                match item.string(n, &path) {
                    Some(s) if !s.starts_with('/') => {
                        item.problem(n, &path, "must be an absolute path (BIRD's control socket)");
                        None
                    }
                    other => other.map(PathBuf::from),
                }
            }
            None => Some(PathBuf::from(DEFAULT_SOCKET)),
        };
        let protocol = match protocol {
            Some(n) => {
                let path = item.key_path("protocol");
                match item.string(n, &path) {
                    Some(name) if !valid_symbol(&name) => {
                        item.problem(
                            n,
                            &path,
                            format!(
                                "BIRD protocol name {name:?} must be a letter or _ then up \
                                 to 63 of A-Z a-z 0-9 _ (it names a file and goes into BIRD commands)"
                            ),
                        );
                        None
                    }
                    other => other.map(|name| Some(Place::named(name))),
                }
            }
            None => Some(None),
        };
        Some((BackendId::bird(socket?), protocol?))
    }

    /// A static protocol of the prefix's family.
    fn default_place(&self, prefix: &IpNet) -> Place {
        Place::named(default_protocol(prefix))
    }

    /// A BIRD static protocol has one channel, so one family; and its include file is named
    /// after it alone, so two BIRDs cannot share a protocol name.
    fn check_routes(&self, routes: &[RouteAt<'_>], report: &mut Report<'_>) {
        let mut seen: HashMap<&str, (&str, bool, &str)> = HashMap::new();
        let mut reported: Vec<&str> = Vec::new();
        for at in routes {
            let p = at.route;
            if p.backend.kind != KIND {
                continue;
            }
            let Some(protocol) = p.place.name() else {
                continue;
            };
            let v6 = p.prefix.addr().is_ipv6();
            if reported.contains(&protocol) {
                continue;
            }
            match seen.get(protocol) {
                Some((socket, _, other)) if *socket != p.backend.instance => {
                    let message = format!(
                        "BIRD protocol {protocol} is used with the sockets {socket} (service \"{other}\") and {}: its include file would be shared; name the protocols apart",
                        p.backend.instance
                    );
                    report.problem(at.offset, at.path.clone(), message);
                    reported.push(protocol);
                }
                Some((_, family, other)) if *family != v6 => {
                    let message = format!(
                        "BIRD protocol {protocol} gets IPv4 and IPv6 prefixes ({} here, the other family in service \"{other}\"); a static protocol has one channel",
                        p.prefix
                    );
                    report.problem(at.offset, at.path.clone(), message);
                    reported.push(protocol);
                }
                Some(_) => {}
                None => {
                    seen.insert(protocol, (&p.backend.instance, v6, at.service));
                }
            }
        }
    }

    fn section_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        generator.subschema_for::<schema::Bird>()
    }

    fn prefix_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        generator.subschema_for::<Vec<crate::config::schema::Item<schema::BirdPrefix>>>()
    }
}

/// The schema of BIRD's section and items, as written.
mod schema {
    use crate::config::schema::Duration;
    use schemars::JsonSchema;

    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct Bird {
        /// Where the include files bird-PROTOCOL.conf are written.
        include_dir: Option<String>,
        timeout: Option<Duration>,
        reconcile_interval: Option<Duration>,
    }

    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct BirdPrefix {
        prefix: String,
        socket: Option<String>,
        protocol: Option<String>,
    }
}
