//! GoBGP in the config file ([`BackendLoader`]): the `[gobgp]` section (`timeout`,
//! `reconcile_interval`) and the items of `prefixes.gobgp` (`api`: gobgpd's gRPC API; every
//! prefix in the global RIB, the default place), with their schema. Every message is the
//! one the loader always gave.

use super::{valid_api, Settings, DEFAULT_API, KIND};
use crate::config::{BackendLoader, BackendSection, DaemonSettings, KindItem};
use crate::routing::{BackendId, Place};
use std::sync::Arc;

/// GoBGP's part of the config file.
pub struct Loader;

impl DaemonSettings for Settings {
    const KIND: crate::routing::BackendKind = KIND;
}

impl BackendLoader for Loader {
    fn key(&self) -> &'static str {
        "gobgp"
    }

    fn heading(&self) -> &'static str {
        "[gobgp]"
    }

    fn section(&self, item: Option<&mut KindItem<'_, '_, '_>>) -> Option<Arc<dyn BackendSection>> {
        let defaults = Settings::default();
        let Some(item) = item else {
            return Some(Arc::new(defaults));
        };
        let timeout = match item.take("timeout") {
            Some(n) => item.duration(n, "gobgp.timeout"),
            None => Some(defaults.timeout),
        };
        let reconcile_interval = match item.take("reconcile_interval") {
            Some(n) => item.duration(n, "gobgp.reconcile_interval"),
            None => Some(defaults.reconcile_interval),
        };
        Some(Arc::new(Settings {
            timeout: timeout?,
            reconcile_interval: reconcile_interval?,
        }))
    }

    fn prefix(&self, item: &mut KindItem<'_, '_, '_>) -> Option<(BackendId, Option<Place>)> {
        let api = match item.take("api") {
            Some(n) => {
                let path = item.key_path("api");
                match item.string(n, &path) {
                    Some(s) if !valid_api(&s) => {
                        item.problem(
                            n,
                            &path,
                            format!(
                                "{s:?} is not an address and port like \"127.0.0.1:50051\" or \"[::1]:50051\" (gobgpd's --api-hosts; a host name or unix socket is not supported)"
                            ),
                        );
                        None
                    }
                    other => other,
                }
            }
            None => Some(DEFAULT_API.to_owned()),
        };
        Some((BackendId::gobgp(&api?), Some(Place::default())))
    }

    fn section_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        generator.subschema_for::<schema::Gobgp>()
    }

    fn prefix_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema {
        generator.subschema_for::<Vec<crate::config::schema::Item<schema::GobgpPrefix>>>()
    }
}

/// The schema of GoBGP's section and items, as written.
mod schema {
    use crate::config::schema::Duration;
    use schemars::JsonSchema;

    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct Gobgp {
        /// Time limit of one call to gobgpd's gRPC API.
        timeout: Option<Duration>,
        reconcile_interval: Option<Duration>,
    }

    #[derive(JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct GobgpPrefix {
        prefix: String,
        /// gobgpd's gRPC API, IP:PORT (gobgpd's --api-hosts), e.g. "127.0.0.1:50051".
        api: Option<String>,
    }
}
