//! `anycastd schema`: a JSON Schema of the config file, generated (schemars) from the types
//! below, which describe the file as it is written: every section and key, a plain item or a
//! table wherever both are accepted, durations as seconds or strings. Each check kind gives
//! its own table (declared in its file with `check_table!`: the keys every check has, then
//! its own), gathered from the registry under `Checks`; each routing kind gives its section
//! and its prefix items (`routing/KIND/config.rs`), gathered at the top and under
//! `Prefixes`. Editors' TOML support (Taplo, "Even Better TOML") completes and checks with
//! it. The validator in this module's parent stays the authority (it also checks what a
//! schema cannot: prefixes, a place's rules, a check's target); tests check that every
//! example and valid golden config validates against the schema, that configs with unknown
//! keys do not, and that every key of the table in docs/configuration.md is in it.
#![allow(dead_code)]

use super::kind::Registry;
use schemars::JsonSchema;
use std::collections::BTreeMap;

/// A duration: seconds (`5`, `0.5`) or a number with a unit (`"500ms"`, `"5s"`, `"2m"`,
/// `"1h"`, `"90d"`, `"2w"`), or a sum of them (`"1h30m"`).
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Duration {
    Seconds(#[schemars(range(min = 0.001, max = 1_000_000_000.0))] f64),
    Text(
        #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$|^[0-9]+(\.[0-9]+)?$"))]
        String,
    ),
}

/// An anycastd configuration file.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct File {
    journal: Option<Journal>,
    control: Option<Control>,
    hooks: Option<Hooks>,
    daemon: Option<Daemon>,
    metrics: Option<Metrics>,
    checks: Option<ChecksSection>,
    fleet: Option<Fleet>,
    /// The services, by name (1-64 characters of A-Z a-z 0-9 _ . -).
    services: BTreeMap<String, Service>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Journal {
    /// Journal directory.
    path: Option<String>,
    /// Records older than this are deleted.
    max_age: Option<Duration>,
    max_records_per_service: Option<u64>,
    max_records: Option<u64>,
    /// The journal's page cache in MiB (1-1024).
    #[schemars(range(min = 1, max = 1024))]
    cache_mib: Option<u64>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Control {
    /// The control socket (absolute path).
    socket: Option<String>,
    /// Members may read: status, history, replay, report.
    group: Option<String>,
    /// Members may also act: stop, drain, undrain, reload.
    admin_group: Option<String>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Hooks {
    /// Programs run on every state transition.
    on_transition: Option<Vec<Item<HookTable>>>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct HookTable {
    command: String,
    args: Option<Vec<String>>,
    timeout: Option<Duration>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Daemon {
    shutdown_timeout: Option<Duration>,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Metrics {
    /// Address of the HTTP endpoint, e.g. "127.0.0.1:9250".
    listen: Option<String>,
}

/// The fleet guard's etcd (README, "Fleet guard").
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Fleet {
    /// etcd's client URLs, e.g. ["https://10.0.0.1:2379"].
    #[schemars(length(min = 1))]
    etcd: Vec<String>,
    /// This host in the fleet (default: the hostname).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.-]{1,253}$"))]
    site: Option<String>,
    /// Keys live under it (default "/anycastd").
    prefix: Option<String>,
    /// A site that stops renewing is gone after this (whole seconds, at least 2).
    lease: Option<Duration>,
    /// What a guarded withdrawal does while etcd cannot be reached.
    on_unreachable: Option<OnUnreachable>,
    /// CA certificate (PEM) of etcd's server certificate.
    ca: Option<String>,
    /// Client certificate (PEM).
    cert: Option<String>,
    /// Its key (PEM).
    key: Option<String>,
    /// etcd user.
    user: Option<String>,
    /// File holding the user's password.
    password_file: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum OnUnreachable {
    Hold,
    Local,
}

/// A service's fleet guard: min_announcing or max_withdrawn.
#[derive(JsonSchema)]
#[serde(untagged)]
enum FleetRule {
    Min(MinAnnouncing),
    Max(MaxWithdrawn),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct MinAnnouncing {
    #[schemars(range(min = 1, max = 1000))]
    min_announcing: u32,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct MaxWithdrawn {
    /// A percentage, "0%" to "100%".
    #[schemars(regex(pattern = r"^(100|[1-9]?[0-9])%$"))]
    max_withdrawn: String,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChecksSection {
    /// Where the network namespaces of netns-backed VRFs are.
    netns_dir: Option<String>,
}

/// A plain item (a string: the item's one required key) or a table.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Item<T> {
    Plain(String),
    Table(T),
}

/// How many checks must pass: "all", "any" or a number.
#[derive(JsonSchema)]
#[serde(untagged)]
enum Require {
    Word(RequireWord),
    Count(#[schemars(range(min = 1))] u32),
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum RequireWord {
    All,
    Any,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Service {
    #[schemars(range(min = 1, max = 1000))]
    rise: Option<u32>,
    #[schemars(range(min = 1, max = 1000))]
    fall: Option<u32>,
    require: Option<Require>,
    fast_interval: Option<Duration>,
    damping: Option<Damping>,
    /// What unhealthy means: withdraw the prefixes, or keep them announced de-preferred.
    on_unhealthy: Option<OnUnhealthy>,
    /// The attributes of a de-preferred announcement (and added to a graceful drain's).
    deprefer: Option<Deprefer>,
    /// How long a drain or stop announces with GRACEFUL_SHUTDOWN before withdrawing (0: at
    /// once), at most 1 h.
    drain_grace: Option<Grace>,
    fleet: Option<FleetRule>,
    prefixes: Prefixes,
    checks: Checks,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum OnUnhealthy {
    Withdraw,
    Deprefer,
}

/// A drain grace: 0 (none) or a duration.
#[derive(JsonSchema)]
#[serde(untagged)]
enum Grace {
    None(#[schemars(range(min = 0, max = 0))] u8),
    Some(Duration),
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Deprefer {
    /// Times the local AS is prepended to the AS path.
    #[schemars(range(min = 1, max = 10))]
    as_path_prepend: Option<u8>,
    /// The MULTI_EXIT_DISC.
    med: Option<u32>,
    /// RFC 1997 communities, "ASN:VALUE".
    communities: Option<Vec<CommunityText>>,
    /// RFC 8092 large communities, "GLOBAL:LOCAL1:LOCAL2".
    large_communities: Option<Vec<LargeCommunityText>>,
}

/// An RFC 1997 community, "ASN:VALUE" (each 0-65535).
#[derive(JsonSchema)]
struct CommunityText(#[schemars(regex(pattern = r"^[0-9]+:[0-9]+$"))] String);

/// An RFC 8092 large community, "GLOBAL:LOCAL1:LOCAL2" (each 0-4294967295).
#[derive(JsonSchema)]
struct LargeCommunityText(#[schemars(regex(pattern = r"^[0-9]+:[0-9]+:[0-9]+$"))] String);

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct Damping {
    half_life: Duration,
    penalty: Option<u32>,
    suppress: Option<u32>,
    reuse: Option<u32>,
    max_suppress: Option<Duration>,
}

/// `prefixes`: one key per routing kind a config file reaches, each an array of its items
/// (filled from the kinds in [`json`]).
struct Prefixes;

impl JsonSchema for Prefixes {
    fn schema_name() -> String {
        "Prefixes".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        // Never asked for, as `Checks`.
        schemars::schema::Schema::Bool(true)
    }
}

/// `checks`: one key per kind, each an array of the kind's items (filled from the registry
/// in [`json`]).
struct Checks;

impl JsonSchema for Checks {
    fn schema_name() -> String {
        "Checks".into()
    }

    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        // Never asked for: [`json`] puts the definition in before the file's schema is made.
        schemars::schema::Schema::Bool(true)
    }
}

/// The table of a check kind: the keys every check has, then the kind's own, as
/// `check_table!(Tcp { address: String });`.
macro_rules! check_table {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        pub struct $name {
            name: Option<String>,
            interval: Option<$crate::config::schema::Duration>,
            timeout: Option<$crate::config::schema::Duration>,
            pending_timeout: Option<$crate::config::schema::Duration>,
            shadow: Option<bool>,
            hard: Option<bool>,
            vrf: Option<String>,
            $($field: $ty),*
        }
    };
}
pub(crate) use check_table;

/// The schema of a config file whose checks are of the kinds of `kinds`, as JSON text.
pub fn json(kinds: &dyn Registry) -> String {
    use schemars::schema::{InstanceType, Schema, SchemaObject};
    let mut generator = schemars::gen::SchemaSettings::default().into_generator();
    let mut checks = SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        ..SchemaObject::default()
    };
    for kind in kinds.kinds() {
        let items = kind.schema(&mut generator);
        checks
            .object()
            .properties
            .insert(kind.name().to_owned(), items);
    }
    checks.object().additional_properties = Some(Box::new(Schema::Bool(false)));
    generator
        .definitions_mut()
        .insert("Checks".to_owned(), Schema::Object(checks));
    // The routing kinds: each its section at the top and its key under `prefixes`.
    let mut prefixes = SchemaObject {
        instance_type: Some(InstanceType::Object.into()),
        ..SchemaObject::default()
    };
    let mut sections = Vec::new();
    for loader in super::routing::loaders() {
        let items = loader.prefix_schema(&mut generator);
        prefixes
            .object()
            .properties
            .insert(loader.key().to_owned(), items);
        sections.push((loader.key(), loader.section_schema(&mut generator)));
    }
    prefixes.object().additional_properties = Some(Box::new(Schema::Bool(false)));
    generator
        .definitions_mut()
        .insert("Prefixes".to_owned(), Schema::Object(prefixes));
    let mut root = generator.into_root_schema_for::<File>();
    for (key, section) in sections {
        root.schema
            .object()
            .properties
            .insert(key.to_owned(), section);
    }
    let mut schema = serde_json::to_value(root).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "title".into(),
            serde_json::Value::String("anycastd configuration".into()),
        );
    }
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
