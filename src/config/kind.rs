//! What the loader needs of a check kind, as traits the kinds implement (in `checks/`), and
//! the walker's helpers a kind reads its keys with ([`KindItem`]).
//!
//! The loader reads what every check has (`name`, `interval`, `timeout`, `pending_timeout`,
//! `shadow`, `vrf`: `checks.rs`) and hands the rest of an item to its kind. The kinds are not
//! known here: the caller passes a [`Registry`] to [`super::parse`] and [`super::load`]
//! (`checks::REGISTRY` in the daemon). Dependency inversion, so that `config/` imports nothing
//! from `checks/` while each kind keeps its keys, identity, label, schema and probe in its own
//! file: `checks/` sits above `config/`, never beside it in a circle. (The other way, moving
//! the generic walker to a leaf module both use, would have moved the `Validator` that the
//! service and routing sections are written against.)

use super::tree::{Key, Node, Value};
use super::validate::{join, Table, Validator};
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A check's kind-specific settings, as the rest of the daemon sees them.
pub trait KindSettings: fmt::Debug + Send + Sync + Any {
    /// The kind's name as the config file and the journal spell it (the key under `checks.`).
    fn name(&self) -> &'static str;
    /// The kind's name in log lines (`Cabourotte health check "dns" failed.`).
    fn label(&self) -> &'static str;
    /// What, with the kind and the check's name, identifies the check: everything that says
    /// what is checked. A reload keeps the state of a check whose identity is unchanged (a
    /// changed target is a new check); the journal records it.
    fn identity(&self) -> String;
    /// The age past which a result fails as stale, for kinds that read stored results
    /// (Cabourotte's `max_age`); journaled with the check's parameters.
    fn max_age(&self) -> Option<Duration>;
    /// The settings as `Any`, for the kind's own code to get its type back.
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is of the same kind with equal settings.
    fn same(&self, other: &dyn KindSettings) -> bool;
}

impl PartialEq for dyn KindSettings {
    fn eq(&self, other: &dyn KindSettings) -> bool {
        self.same(other)
    }
}

/// A kind as the loader sees it: how its keys are read, and its part of the schema.
pub trait KindLoader: Sync {
    /// The key under `checks.` (`tcp`).
    fn name(&self) -> &'static str;
    /// Whether a table item must have `name` (Cabourotte: the check's name there).
    fn name_required(&self) -> bool;
    /// Whether its checks run programs: a config with any is a program, so its file must be
    /// safe from other users ([`super::load`]).
    fn runs_programs(&self) -> bool;
    /// Read the kind's own keys: its settings and the name derived from its target (used
    /// when the check has no `name`), or `None` after reporting the problems.
    fn parse(&self, item: &mut KindItem<'_, '_, '_>) -> Option<(Arc<dyn KindSettings>, String)>;
    /// The schema of `checks.KIND`: an array of items (a plain string or a table of the keys
    /// every check has and the kind's own).
    fn schema(&self, generator: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema;
}

/// The check kinds the loader knows.
pub trait Registry: Sync {
    /// Every kind, in the order the schema and error messages list them.
    fn kinds(&self) -> Vec<&dyn KindLoader>;
}

/// An item being read by its kind: a check item by its check kind, a prefix item or a
/// section by its routing kind ([`super::routing`]). A plain string (a check kind's one
/// required key; a prefix), or a table whose keys are taken one by one (the keys left over
/// are reported as unknown).
pub struct KindItem<'v, 'a, 't> {
    pub(super) validator: &'v mut Validator,
    pub(super) item: Item<'a, 't>,
    pub(super) path: &'v str,
}

/// A check item: a plain string, or a table.
pub(super) enum Item<'a, 't> {
    Plain(&'a Node),
    Table(&'a Node, &'t mut Table<'a>),
}

impl<'a> KindItem<'_, 'a, '_> {
    /// The item's key path (`services.ntp.checks.tcp[0]`).
    pub fn path(&self) -> &str {
        self.path
    }

    /// The key path of `key` in this item.
    pub fn key_path(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// The item itself when it is a plain string.
    pub fn plain(&self) -> Option<&'a Node> {
        match self.item {
            Item::Plain(node) => Some(node),
            Item::Table(..) => None,
        }
    }

    /// The kind's one required key: the plain item itself, or the key in the table (a
    /// missing key is reported).
    pub fn required(&mut self, key: &str) -> Option<(&'a Node, String)> {
        match &mut self.item {
            Item::Plain(node) => Some((node, self.path.to_owned())),
            Item::Table(node, table) => match self.validator.take(table, key) {
                Some(n) => Some((n, join(self.path, key))),
                None => {
                    let at = node.span.start;
                    self.validator
                        .problem(at, join(self.path, key), "missing required key");
                    None
                }
            },
        }
    }

    /// Take an optional key (a plain item has none).
    pub fn take(&mut self, key: &str) -> Option<&'a Node> {
        match &mut self.item {
            Item::Plain(_) => None,
            Item::Table(_, table) => self.validator.take(table, key),
        }
    }

    /// A key's node, without taking it.
    pub fn peek(&self, key: &str) -> Option<&'a Node> {
        match &self.item {
            Item::Plain(_) => None,
            Item::Table(_, table) => table
                .entries
                .iter()
                .find(|(k, _)| k.name == key)
                .map(|(_, n)| n),
        }
    }

    /// Report a problem at `node`'s line: `FILE:LINE: PATH: MESSAGE`.
    pub fn problem(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.validator.problem(node.span.start, path, message);
    }

    /// Report a problem at a key's line.
    pub fn key_problem(&mut self, key: &Key, path: &str, message: impl Into<String>) {
        self.validator.problem(key.span.start, path, message);
    }

    /// A string.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.validator.string(node, path)
    }

    /// An array of strings.
    pub fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        self.validator.strings(node, path)
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        self.validator.boolean(node, path)
    }

    /// A duration: seconds or a number with a unit.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.validator.duration(node, path)
    }

    /// A base URL: http or https with a host, no query, no fragment (without its trailing
    /// slash).
    pub fn base_url(&mut self, node: &Node, path: &str) -> Option<String> {
        self.validator.url(node, path)
    }

    /// The entries of a table whose keys are the kind's to judge (`env`, `headers`).
    pub fn entries(&mut self, node: &'a Node, path: &str) -> Option<&'a [(Key, Node)]> {
        match &node.value {
            Value::Table(entries) => Some(entries),
            other => {
                self.validator.problem(
                    node.span.start,
                    path,
                    format!("must be a table, not {}", other.kind()),
                );
                None
            }
        }
    }
}
