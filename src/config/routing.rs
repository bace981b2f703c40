//! What the loader needs of a kind of routing daemon that a config file reaches, as traits
//! its folder implements (`routing/KIND/config.rs`): its key (the top-level section
//! `[KEY]` and `prefixes.KEY`), how its section and its prefix items are read (through the
//! walker's [`KindItem`], as a check kind reads its keys), the rules across its prefixes,
//! and its part of the schema.
//!
//! The loader names no daemon: it reads what every prefix has (`prefix`) and hands the rest
//! of an item to the kind whose key it is under. The kinds are those of
//! [`crate::routing::KINDS`] whose [`crate::routing::Kind::config`] gives a loader (one
//! registration line, the one in `KINDS`; a kind that tests alone reach has none). The same
//! inversion as [`super::kind`] for check kinds: the traits are here, the kinds implement
//! them; `config/` uses only the kind-neutral routing types (`Route`, `BackendId`, `Place`,
//! `Settings`).

use super::kind::KindItem;
use super::tree::Node;
use super::validate::Validator;
use crate::routing::{BackendId, Place, Route};
use ipnet::IpNet;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A kind of routing daemon as the loader sees it.
pub trait BackendLoader: Sync {
    /// Its key: the top-level section `[KEY]` and the prefix type `prefixes.KEY`.
    fn key(&self) -> &'static str;

    /// Its section as a reload's "restart required" list names it (`[KEY]`).
    fn heading(&self) -> &'static str;

    /// Read its section (`None`: the file has none, every key has its default), or `None`
    /// after reporting the problems. A key not taken is reported unknown.
    fn section(&self, item: Option<&mut KindItem<'_, '_, '_>>) -> Option<Arc<dyn BackendSection>>;

    /// Read a prefix item's own keys (`prefix` aside; a plain item has none): the instance
    /// that announces it and its place there (`None`: [`BackendLoader::default_place`]), or
    /// `None` after reporting the problems.
    fn prefix(&self, item: &mut KindItem<'_, '_, '_>) -> Option<(BackendId, Option<Place>)>;

    /// The place of a prefix whose item names none.
    fn default_place(&self, prefix: &IpNet) -> Place {
        let _ = prefix;
        Place::default()
    }

    /// A prefix in the message of a prefix listed twice or in two services.
    fn prefix_text(&self, route: &Route) -> String {
        route.text()
    }

    /// The rules across the prefixes of every service, after each was read, for the routes
    /// of this kind among `routes` (each with its item's key path and offset).
    fn check_routes(&self, routes: &[RouteAt<'_>], report: &mut Report<'_>) {
        let _ = (routes, report);
    }

    /// The rules between its section (`section`: the node, `None` when absent) and every
    /// prefix of every service, once all are valid: a key naming an instance no prefix
    /// reaches. Read from the node, so that they hold whether the section is valid or not.
    fn check_use(&self, section: Option<&Node>, routes: &[&Route], report: &mut Report<'_>) {
        let _ = (section, routes, report);
    }

    /// The schema of its section.
    fn section_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema;

    /// The schema of `prefixes.KEY`: an array of items (a plain string, the prefix, or a
    /// table of `prefix` and the kind's own keys).
    fn prefix_schema(
        &self,
        generator: &mut schemars::gen::SchemaGenerator,
    ) -> schemars::schema::Schema;
}

/// The settings a kind's section gives, as the loader keeps them.
pub trait BackendSection: fmt::Debug + Send + Sync + Any {
    /// Whether `other` is the same kind's section with equal settings (a change needs a
    /// restart).
    fn same(&self, other: &dyn BackendSection) -> bool;

    /// The settings as `Any`, for the kind's own code to get its type back.
    fn as_any(&self) -> &dyn Any;

    /// Put its settings in `settings`, for the writers of the kind.
    fn set(&self, settings: &mut crate::routing::Settings);
}

/// A routing daemon's settings type: its section is kept as such (a [`BackendSection`] by the
/// blanket impl below), so a slice names only its kind.
pub trait DaemonSettings: fmt::Debug + Clone + PartialEq + Send + Sync + Any {
    /// The kind whose section these settings are.
    const KIND: crate::routing::BackendKind;
}

impl<T: DaemonSettings> BackendSection for T {
    fn same(&self, other: &dyn BackendSection) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn set(&self, settings: &mut crate::routing::Settings) {
        settings.set(T::KIND, self.clone());
    }
}

/// A prefix read, with where its item is.
pub struct RouteAt<'a> {
    /// Its service.
    pub service: &'a str,
    /// The prefix.
    pub route: &'a Route,
    /// Its item's key path (`services.dns.prefixes.KEY[0]`).
    pub path: String,
    /// Its item's offset in the file.
    pub offset: usize,
}

/// Where a kind's rules report problems.
pub struct Report<'v> {
    pub(super) validator: &'v mut Validator,
}

impl Report<'_> {
    /// Report a problem at offset `offset` of the file: `FILE:LINE: PATH: MESSAGE`.
    pub fn problem(&mut self, offset: usize, path: impl Into<String>, message: impl Into<String>) {
        self.validator.problem(offset, path, message);
    }
}

/// The sections of the routing daemons, in the order of [`crate::routing::KINDS`].
#[derive(Clone, Default)]
pub struct Sections(pub(super) Vec<(&'static dyn BackendLoader, Arc<dyn BackendSection>)>);

impl Sections {
    /// Their settings, for the writers.
    pub fn settings(&self) -> crate::routing::Settings {
        let mut settings = crate::routing::Settings::default();
        for (_, section) in &self.0 {
            section.set(&mut settings);
        }
        settings
    }

    /// The headings of the sections that differ in `new`.
    pub fn changed(&self, new: &Sections) -> Vec<&'static str> {
        let mut headings = Vec::new();
        for (loader, section) in &self.0 {
            let same = new
                .0
                .iter()
                .find(|(l, _)| l.key() == loader.key())
                .is_some_and(|(_, s)| section.same(s.as_ref()));
            if !same {
                headings.push(loader.heading());
            }
        }
        headings
    }

    /// The section of kind `key`, as its own type.
    pub fn get<T: Any>(&self, key: &str) -> Option<&T> {
        self.0
            .iter()
            .find(|(l, _)| l.key() == key)
            .and_then(|(_, s)| s.as_any().downcast_ref::<T>())
    }
}

impl fmt::Debug for Sections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(l, s)| (l.key(), s)))
            .finish()
    }
}

impl PartialEq for Sections {
    fn eq(&self, other: &Sections) -> bool {
        self.changed(other).is_empty() && other.changed(self).is_empty()
    }
}

/// The kinds of routing daemon a config file reaches, in the order of
/// [`crate::routing::KINDS`].
pub fn loaders() -> Vec<&'static dyn BackendLoader> {
    crate::routing::KINDS
        .iter()
        .filter_map(|k| k.words().config())
        .collect()
}

/// The loader of the kind of `backend` (`None` for a kind no config file reaches).
pub fn loader_of(backend: &BackendId) -> Option<&'static dyn BackendLoader> {
    backend.kind.words().config()
}

/// Whether `name` is a VRF name anycastd accepts (1-36 characters of A-Z a-z 0-9 _ . -;
/// the caller gives the empty string its own meaning).
pub fn valid_vrf_name(name: &str) -> bool {
    name.len() <= 36
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
