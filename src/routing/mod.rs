//! Routing daemons: the seam every backend fits ([`Backend`]), what a kind of daemon says
//! about itself ([`Kind`]), the kind-neutral level-triggered [`writer`] that converges a
//! backend to the services' decisions, the start-up [`reconcile`]iation, and one folder per
//! backend (for example [`frr`]: vtysh, the running config, the advertised view; [`memory`]:
//! an in-process backend for tests).
//!
//! A backend is identified by a [`BackendId`] (its kind and instance: the vtysh binary, a
//! control socket, an API endpoint). A prefix's [`Place`] within it (a VRF, a static
//! protocol, or none for a daemon without tables) is an opaque name that only its [`Kind`]
//! puts in words. A backend can read what is installed ([`Backend::read`]: per place,
//! whether it exists and which prefixes it has), apply an ordered batch of changes in calls
//! of its choosing ([`Backend::batches`], [`Backend::apply`]), and show what it advertises
//! ([`Backend::inspect`]). The writer decides *what* to change and *when*; the backend only
//! *how*. A backend never creates an instance or table: a prefix whose place is missing is
//! an error for that prefix alone.
//!
//! Adding a backend: a folder here with a type implementing [`Backend`] and [`kind::Open`],
//! a `static` implementing [`Kind`], and one line in [`KINDS`] (with its `mod` line); a
//! backend a config file reaches reads its section and prefix items itself (`config.rs`,
//! implementing [`crate::config::BackendLoader`], given by [`Kind::config`]), and its
//! section sets its settings in [`Settings`]. docs/development.md ("Adding a routing
//! backend") walks through it.

pub mod bird;
pub mod frr;
pub mod gobgp;
pub mod kind;
pub mod memory;
pub mod reconcile;
pub mod writer;

pub use kind::Kind;

use anycastd_journal::wire;
use ipnet::IpNet;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Every kind of routing daemon this build knows, in the order they are listed (the first
/// is the kind of a journaled prefix from the builds that knew no other).
pub const KINDS: &[BackendKind] = &[frr::KIND, bird::KIND, gobgp::KIND, memory::KIND];

/// A boxed future, for the methods of [`Kind`] and the capabilities (trait objects).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a backend could not be read or shown, whatever its kind ([`read`], [`inspect`]).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// A kind of routing daemon: a handle on its [`Kind`] (compared, ordered and hashed by its
/// place in [`KINDS`] and its name).
#[derive(Clone, Copy)]
pub struct BackendKind(&'static dyn Kind);

impl BackendKind {
    /// The handle on `kind` (each kind's folder has one, `KIND`).
    pub const fn of(kind: &'static dyn Kind) -> BackendKind {
        BackendKind(kind)
    }

    /// Its name in the journal: `frr`.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The kind a journal name stands for.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        KINDS.iter().copied().find(|k| k.name() == name)
    }

    /// Its name in messages: `FRR`.
    pub fn label(self) -> &'static str {
        self.0.label()
    }

    /// What it says about itself.
    pub fn words(self) -> &'static dyn Kind {
        self.0
    }

    /// Where it is in [`KINDS`] (after them all when not listed).
    fn rank(self) -> usize {
        KINDS
            .iter()
            .position(|k| k.name() == self.name())
            .unwrap_or(KINDS.len())
    }
}

impl std::ops::Deref for BackendKind {
    type Target = dyn Kind;
    fn deref(&self) -> &(dyn Kind + 'static) {
        self.0
    }
}

impl std::fmt::Debug for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for BackendKind {
    fn eq(&self, other: &BackendKind) -> bool {
        self.name() == other.name()
    }
}

impl Eq for BackendKind {}

impl PartialOrd for BackendKind {
    fn partial_cmp(&self, other: &BackendKind) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BackendKind {
    fn cmp(&self, other: &BackendKind) -> std::cmp::Ordering {
        (self.rank(), self.name()).cmp(&(other.rank(), other.name()))
    }
}

impl std::hash::Hash for BackendKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

/// One routing daemon instance anycastd writes to (each kind's folder has a constructor:
/// `BackendId::frr(vtysh)`, `BackendId::memory(name)`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId {
    /// Its kind.
    pub kind: BackendKind,
    /// Which one, as its kind names it (a binary, a control socket, an endpoint, a name).
    pub instance: String,
}

/// In messages, as its kind writes it ([`Kind::id_text`]).
impl std::fmt::Display for BackendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind.id_text(&self.instance))
    }
}

/// Where a prefix goes within its backend, as its backend names it (a VRF, a static
/// protocol); the default one (`None`) for a daemon without tables. Only the backend's
/// [`Kind`] puts it in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place(Option<String>);

impl Place {
    /// The place called `name`.
    pub fn named(name: impl Into<String>) -> Place {
        Place(Some(name.into()))
    }

    /// The place a journal or config name stands for (`None`: the default one).
    pub fn of(name: Option<String>) -> Place {
        Place(name)
    }

    /// Its name (`None`: the default place).
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Its name, taken.
    pub fn into_name(self) -> Option<String> {
        self.0
    }
}

impl From<Option<&str>> for Place {
    fn from(name: Option<&str>) -> Place {
        Place(name.map(str::to_owned))
    }
}

/// A prefix of a service, and where it is announced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The network (host bits zero).
    pub prefix: IpNet,
    /// Where within its backend.
    pub place: Place,
    /// The backend that announces it.
    pub backend: BackendId,
}

impl Route {
    /// Its place within its backend.
    pub fn key(&self) -> PrefixKey {
        (self.place.clone(), self.prefix)
    }

    /// The journal's name for it (its place in the journal's `vrf` field, as ever).
    pub fn journal_ref(&self) -> wire::PrefixRef {
        wire::PrefixRef {
            backend: self.backend.kind.name().to_owned(),
            instance: self.backend.instance.clone(),
            vrf: self.place.name().map(str::to_owned),
            prefix: self.prefix.to_string(),
        }
    }

    /// The route a journal reference names (`None` if its backend kind is unknown to this
    /// build or its prefix does not parse).
    pub fn of_journal_ref(r: &wire::PrefixRef) -> Option<Route> {
        Some(Route {
            prefix: r.prefix.parse().ok()?,
            place: Place::of(r.vrf.clone()),
            backend: BackendId {
                kind: BackendKind::from_name(&r.backend)?,
                instance: r.instance.clone(),
            },
        })
    }

    /// In words, as its kind writes a prefix in its place ([`Kind::place_text_at`]).
    pub fn text(&self) -> String {
        self.backend.kind.place_text_at(
            &self.prefix.to_string(),
            self.place.name(),
            &self.backend.instance,
        )
    }
}

/// A prefix within one backend: (place, network).
pub type PrefixKey = (Place, IpNet);

/// One change the writer asks of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The place.
    pub place: Place,
    /// The network.
    pub prefix: IpNet,
    /// Announce (true) or withdraw.
    pub announce: bool,
    /// What it is announced with (ignored for a withdrawal).
    pub attributes: crate::bgp::Attributes,
}

/// What a backend has installed, as read in one go.
pub trait Installed: Send + Sync + 'static {
    /// Whether `place` exists.
    fn has_table(&self, place: &Place) -> bool;
    /// Whether `prefix` is installed in `place`.
    fn contains(&self, place: &Place, prefix: &IpNet) -> bool;
    /// What `prefix` in `place` is installed with (the plain route when it is not installed,
    /// or for a backend that cannot say).
    fn attributes(&self, place: &Place, prefix: &IpNet) -> crate::bgp::Attributes {
        let _ = (place, prefix);
        crate::bgp::Attributes::plain()
    }
    /// Whether `prefix` in `place` is installed with exactly `attributes` (normalized). By
    /// default what [`Installed::attributes`] says; a backend that finds it installed with
    /// something it cannot put in these terms (an operator's FRR route-map) says no,
    /// whatever is asked, so that the writer puts what is wanted in its place.
    fn installed_with(
        &self,
        place: &Place,
        prefix: &IpNet,
        attributes: &crate::bgp::Attributes,
    ) -> bool {
        self.attributes(place, prefix) == *attributes
    }
    /// A copy in the common form.
    fn snapshot(&self) -> Snapshot;
}

/// What a backend has installed, in a form every backend shares: per existing place, its
/// prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The places that exist, with their prefixes.
    pub tables: BTreeMap<Place, BTreeSet<IpNet>>,
    /// What the installed prefixes not announced plain are announced with.
    pub attributes: BTreeMap<PrefixKey, crate::bgp::Attributes>,
}

impl Installed for Snapshot {
    fn has_table(&self, place: &Place) -> bool {
        self.tables.contains_key(place)
    }

    fn contains(&self, place: &Place, prefix: &IpNet) -> bool {
        self.tables.get(place).is_some_and(|t| t.contains(prefix))
    }

    fn attributes(&self, place: &Place, prefix: &IpNet) -> crate::bgp::Attributes {
        self.attributes
            .get(&(place.clone(), *prefix))
            .cloned()
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Snapshot {
        self.clone()
    }
}

/// What a backend shows of one prefix (`status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// Installed (in the daemon's configuration or table).
    pub configured: bool,
    /// A valid best path exists for it.
    pub valid: bool,
    /// Established peers it is (or may be) sent to.
    pub established_peers: usize,
    /// What its best path carries beyond the plain route, as the daemon shows it (`None`:
    /// not shown by this backend, or no best path).
    pub advertised: Option<crate::bgp::Attributes>,
    /// What it is installed with, as the daemon's configuration or table holds it (`None`:
    /// not installed, or installed with something not in these terms, such as an
    /// operator's FRR route-map).
    pub installed: Option<crate::bgp::Attributes>,
}

/// One routing daemon as the writer, the start-up reconciliation and `status` use it.
/// Behaviour only some daemons have is a capability the writer asks for
/// ([`Backend::kept_beside`], [`Backend::reconfigurations`]).
pub trait Backend: Send + Sync + 'static {
    /// What one read returns.
    type Installed: Installed;
    /// Why a call failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Which backend this is.
    fn id(&self) -> &BackendId;

    /// Read what is installed now (no cache).
    fn read(&self) -> impl Future<Output = Result<Self::Installed, Self::Error>> + Send;

    /// Split `changes` (in the order they are to be applied) into calls of [`Backend::apply`]:
    /// consecutive ranges covering them all.
    fn batches(
        &self,
        installed: &Self::Installed,
        changes: &[Change],
    ) -> Vec<std::ops::Range<usize>>;

    /// Apply one batch. On an error, the changes before the failing one may have been applied
    /// and the rest not: the writer reads back to tell. `withdrawing`: every prefix the
    /// writer wants withdrawn now, in this batch or waiting for a retry (a backend that
    /// keeps files beside its daemon keeps them out, whatever the batch).
    fn apply(
        &self,
        installed: &Self::Installed,
        changes: &[Change],
        withdrawing: &[PrefixKey],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Show what it installed and advertises of `prefixes`, in their order.
    fn inspect(
        &self,
        prefixes: &[PrefixKey],
    ) -> impl Future<Output = Result<Vec<Shown>, Self::Error>> + Send;

    /// The error of a prefix whose place does not exist.
    fn missing_table(&self, place: &Place) -> Self::Error;

    /// The error of a change that a call reported as applied but a read-back does not show:
    /// an announcement (`announce`) that is missing, or a withdrawal still there.
    fn not_applied(&self, announce: bool) -> Self::Error;

    /// A file the daemon re-creates whenever it starts (its control socket): the writer
    /// looks at it every [`writer::WATCH_INTERVAL`] and re-reads at once when it is a new
    /// one. `Ok(None)`: the daemon has no such file; `Err`: it cannot be known where it is.
    /// Either way drift is found by the periodic pass alone, and an `Err` is said at start
    /// and in `status`.
    fn runtime_file(&self) -> Result<Option<RuntimeFile>, RuntimeFileUnknown>;

    /// For a daemon without a runtime file: a number that changes whenever a new process of
    /// the daemon answers (GoBGP: how many times its API's event stream opened), `None`
    /// while none answers. The writer looks at it every [`writer::WATCH_INTERVAL`], as at
    /// the runtime file, and takes a new number for a restart. The first look may wait for
    /// the daemon (within its time limit). `None` always: no such mark.
    fn incarnation(&self) -> impl Future<Output = Option<u64>> + Send {
        async { None }
    }

    /// The daemon could not be read with `error`: what is known of the withdrawal of `key`
    /// all the same, in words, to follow the error (see [`KeptBeside::known_while_down`],
    /// which answers by default). `None`: nothing more is known.
    fn known_while_down(&self, error: &Self::Error, key: &PrefixKey) -> Option<String> {
        self.kept_beside()
            .and_then(|k| k.known_while_down(error, key))
    }

    /// What it keeps beside the daemon for the daemon to load, if anything.
    fn kept_beside(&self) -> Option<&dyn KeptBeside<Self::Installed, Self::Error>> {
        None
    }

    /// How it tells that the daemon loaded a new configuration, if it can.
    fn reconfigurations(&self) -> Option<&dyn Reconfigurations> {
        None
    }
}

/// A capability: what a backend keeps beside its daemon for the daemon to load when it
/// starts or reconfigures (include files, say). The writer keeps it in line with what is
/// wanted, and says what it holds when the daemon cannot be asked.
pub trait KeptBeside<I, E>: Send + Sync {
    /// After a fresh read, for the places with nothing to change: bring what is kept in
    /// line with what the daemon has, in the places of `wanted` (each prefix and whether it
    /// is to be announced), less the withdrawals wanted that the daemon has not taken yet
    /// (they are then withdrawn at the daemon's next configure or start). Never changes
    /// what is announced.
    fn tidy<'a>(&'a self, installed: &'a I, wanted: &'a [(PrefixKey, bool)]) -> BoxFuture<'a, ()>;

    /// The daemon could not be read: record `wanted` where the daemon will read it when it
    /// returns, so that it does not come back with what health withdrew meanwhile. Never
    /// changes a running daemon.
    fn offline<'a>(&'a self, wanted: &'a [(PrefixKey, bool)]) -> BoxFuture<'a, ()>;

    /// The daemon could not be read with `error`: what is known of the withdrawal of `key`
    /// all the same, in words, to follow the error (whether what it loads when it starts
    /// leaves the route out). The withdrawal still fails, as any change the daemon could
    /// not be asked for and read back: it is retried, and verified once the daemon
    /// answers. `None`: nothing more is known.
    fn known_while_down(&self, error: &E, key: &PrefixKey) -> Option<String>;
}

/// A capability: a mark that changes whenever the daemon loads a new configuration, whoever
/// asked for it. While changes are set aside after a failure, the writer looks at it every
/// [`writer::WATCH_INTERVAL`] and retries them at once when it changes: whatever made them
/// fail (a syntax error in the daemon's own configuration) may have been fixed.
pub trait Reconfigurations: Send + Sync {
    /// The mark now; `None` when the daemon did not answer (retries keep their backoff).
    fn mark(&self) -> BoxFuture<'_, Option<String>>;
}

/// The file whose re-creation tells that the routing daemon restarted
/// ([`Backend::runtime_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFile {
    /// Where it is.
    pub path: std::path::PathBuf,
    /// How that was found out, in words (`vtysh_args`, `the prefix's socket`).
    pub origin: &'static str,
    /// What the operator can do when it is not there while the daemon answers.
    pub hint: String,
}

/// Where the daemon's runtime file is cannot be known ([`Backend::runtime_file`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; {hint}")]
pub struct RuntimeFileUnknown {
    /// Why not.
    pub reason: String,
    /// What the operator can do.
    pub hint: String,
}

/// How to reach each kind of backend, from the config: per kind, the settings of its own
/// type (the default when its section sets none).
#[derive(Clone, Default)]
pub struct Settings {
    by_kind: BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>,
}

impl Settings {
    /// Set the settings of `kind`.
    pub fn set<T: Any + Send + Sync>(&mut self, kind: BackendKind, settings: T) {
        self.by_kind.insert(kind.name(), Arc::new(settings));
    }

    /// The settings of `kind` (its defaults when none were set).
    pub fn of<T: Any + Clone + Default>(&self, kind: BackendKind) -> T {
        self.by_kind
            .get(kind.name())
            .and_then(|s| s.downcast_ref::<T>())
            .cloned()
            .unwrap_or_default()
    }

    /// How often the writers of a kind read their backend afresh and repair drift.
    pub fn reconcile_interval(&self, kind: BackendKind) -> std::time::Duration {
        kind.words().reconcile_interval(self)
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

/// Start the writer of backend `id`. Outcomes go to `reports`.
pub fn spawn_writer(
    settings: &Settings,
    id: &BackendId,
    reports: mpsc::UnboundedSender<writer::Notice>,
) -> writer::WriterHandle {
    let interval = settings.reconcile_interval(id.kind);
    crate::observe::metrics::backend_counters(id.kind.name(), &id.instance);
    crate::observe::metrics::describe(id.kind.rank(), id.kind.metric_families());
    id.kind.zero_counters(&id.instance);
    id.kind
        .words()
        .opener()
        .spawn_writer(settings, id, interval, reports)
}

/// Read what backend `id` has installed.
pub async fn read(settings: &Settings, id: &BackendId) -> Result<Snapshot, BackendError> {
    id.kind.words().opener().read(settings, id).await
}

/// Show what backend `id` installed and advertises of `prefixes`.
pub async fn inspect(
    settings: &Settings,
    id: &BackendId,
    prefixes: &[PrefixKey],
) -> Result<Vec<Shown>, BackendError> {
    id.kind
        .words()
        .opener()
        .inspect(settings, id, prefixes)
        .await
}

/// One line per backend of `ids` whose daemon's restarts cannot be noticed at once (from
/// the configuration and the files alone), for `check-config`.
pub fn restart_detection_off<'a>(
    settings: &Settings,
    ids: impl IntoIterator<Item = &'a BackendId>,
) -> Vec<String> {
    ids.into_iter()
        .filter_map(|id| {
            let why = id.kind.words().opener().restart_detection_off(settings, id)?;
            Some(format!(
                "restart detection off for {} {}: {why}; a {} restart would be repaired only within reconcile_interval ({}s)",
                id.kind.instance_noun(),
                id.instance,
                id.kind.daemon(),
                settings.reconcile_interval(id.kind).as_secs_f64()
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_name_of_its_own_that_finds_it() {
        for kind in KINDS {
            assert_eq!(BackendKind::from_name(kind.name()), Some(*kind));
            let same: Vec<_> = KINDS.iter().filter(|k| k.name() == kind.name()).collect();
            assert_eq!(same.len(), 1, "{kind:?} twice");
        }
        assert_eq!(BackendKind::from_name("gone"), None);
    }

    #[test]
    fn backends_order_by_their_kinds_place_in_the_registry_then_instance() {
        // As the enum ordered them: maps of backends list FRR before BIRD before memory.
        let ids = [
            BackendId::memory("a"),
            BackendId::bird("/run/bird/bird.ctl"),
            BackendId::frr("/usr/bin/vtysh"),
            BackendId::frr("/usr/bin/a"),
        ];
        let sorted: Vec<String> = ids
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            sorted,
            [
                "/usr/bin/a",
                "/usr/bin/vtysh",
                "bird:/run/bird/bird.ctl",
                "memory:a"
            ]
        );
    }

    #[test]
    fn a_place_goes_to_the_journals_vrf_field_and_comes_back_the_same() {
        for (backend, place) in [
            (BackendId::frr("/usr/bin/vtysh"), Place::default()),
            (BackendId::frr("/usr/bin/vtysh"), Place::named("123")),
            (
                BackendId::bird("/run/bird/bird.ctl"),
                Place::named("anycastd4"),
            ),
        ] {
            let route = Route {
                prefix: "192.0.2.1/32".parse().unwrap(),
                place: place.clone(),
                backend,
            };
            let r = route.journal_ref();
            assert_eq!(r.vrf.as_deref(), place.name());
            assert_eq!(Route::of_journal_ref(&r), Some(route));
        }
    }
}
