//! A backend in this process, for tests: it records every batch it is asked to apply, and a
//! test can make it fail a prefix, lose a table, turn unreadable, or change behind the
//! writer's back (drift). Backends of one name share their state, so a test and the writer
//! the daemon starts for `BackendId::memory(name)` see the same one. Not reachable from a
//! config file.

pub mod kind;

pub use kind::KIND;

use super::{
    Backend, BackendId, BoxFuture, Change, Installed, KeptBeside, Place, PrefixKey,
    Reconfigurations, RuntimeFileUnknown, Shown, Snapshot,
};
use crate::bgp::Attributes;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// One memory backend (cheap to clone; clones share the state).
#[derive(Debug, Clone)]
pub struct Memory {
    id: BackendId,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    installed: Snapshot,
    applied: Vec<Vec<Change>>,
    failing: HashMap<IpNet, String>,
    unreadable: Option<String>,
    max_batch: usize,
    reads: u64,
    /// The reconfiguration mark ([`Reconfigurations::mark`]), if it has one.
    mark: Option<String>,
    /// The calls that matter for the order of retries: `mark M` for each look at the mark,
    /// `apply` for each batch, `offline P+ P-` for each [`KeptBeside::offline`].
    calls: Vec<String>,
    /// The next apply fails with this error and leaves the backend unreadable with it (the
    /// daemon went away between the pass's read and its write).
    vanish_on_apply: Option<String>,
    /// The file whose re-creation stands for a restart ([`Backend::runtime_file`]).
    runtime_file: Option<std::path::PathBuf>,
    /// Announcements are taken without their attributes (a daemon that drops them).
    drop_attributes: bool,
}

impl Default for State {
    fn default() -> State {
        State {
            installed: Snapshot::default(),
            applied: Vec::new(),
            failing: HashMap::new(),
            unreadable: None,
            max_batch: 500,
            reads: 0,
            mark: None,
            calls: Vec::new(),
            vanish_on_apply: None,
            runtime_file: None,
            drop_attributes: false,
        }
    }
}

impl Memory {
    /// The memory backend called `name` (created empty, without tables, on first use).
    pub fn named(name: &str) -> Memory {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<Mutex<State>>>>> = OnceLock::new();
        let registry = REGISTRY.get_or_init(Mutex::default);
        let state = registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone();
        Memory {
            id: BackendId::memory(name),
            state,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch `path` for restarts (set before the writer starts).
    pub fn runtime_file(&self, path: &std::path::Path) {
        self.state().runtime_file = Some(path.to_owned());
    }

    /// The next apply fails with `error` and leaves the backend unreadable with it.
    pub fn vanish_on_apply(&self, error: &str) {
        self.state().vanish_on_apply = Some(error.to_owned());
    }

    /// Create the table of `vrf` (empty).
    pub fn add_table(&self, vrf: Option<&str>) {
        self.state().installed.tables.entry(vrf.into()).or_default();
    }

    /// Remove the table of `vrf` and its prefixes (a routing daemon restarted without it).
    pub fn remove_table(&self, vrf: Option<&str>) {
        self.state().installed.tables.remove(&vrf.into());
    }

    /// Install or remove a prefix behind the writer's back (a hand edit).
    pub fn set(&self, vrf: Option<&str>, prefix: IpNet, present: bool) {
        let mut state = self.state();
        state.installed.attributes.remove(&(vrf.into(), prefix));
        let table = state.installed.tables.entry(vrf.into()).or_default();
        if present {
            table.insert(prefix);
        } else {
            table.remove(&prefix);
            state.installed.attributes.remove(&(vrf.into(), prefix));
        }
    }

    /// Change what an installed prefix is announced with behind the writer's back.
    pub fn set_attributes(&self, vrf: Option<&str>, prefix: IpNet, attributes: Attributes) {
        let mut state = self.state();
        let key = (Place::from(vrf), prefix);
        if attributes.is_plain() {
            state.installed.attributes.remove(&key);
        } else {
            state.installed.attributes.insert(key, attributes);
        }
    }

    /// Take announcements without their attributes (`true`), or with them again.
    pub fn drop_attributes(&self, drop: bool) {
        self.state().drop_attributes = drop;
    }

    /// Fail every change of `prefix` with `error` (`None`: stop failing it).
    pub fn fail(&self, prefix: IpNet, error: Option<&str>) {
        let mut state = self.state();
        match error {
            Some(e) => state.failing.insert(prefix, e.to_owned()),
            None => state.failing.remove(&prefix),
        };
    }

    /// Fail every read with `error` (`None`: readable again).
    pub fn unreadable(&self, error: Option<&str>) {
        self.state().unreadable = error.map(str::to_owned);
    }

    /// Apply at most `n` changes per call.
    pub fn max_batch(&self, n: usize) {
        self.state().max_batch = n.max(1);
    }

    /// What `prefix` in `vrf` is installed with now (plain when not installed).
    pub fn attributes(&self, vrf: Option<&str>, prefix: IpNet) -> crate::bgp::Attributes {
        super::Installed::attributes(&self.state().installed, &vrf.into(), &prefix)
    }

    /// What it has installed now.
    pub fn installed(&self) -> Snapshot {
        self.state().installed.clone()
    }

    /// Every batch it was asked to apply, in order.
    pub fn applied(&self) -> Vec<Vec<Change>> {
        self.state().applied.clone()
    }

    /// Load "a new configuration": the reconfiguration mark becomes `mark`.
    pub fn reconfigure(&self, mark: &str) {
        self.state().mark = Some(mark.to_owned());
    }

    /// The looks at the mark and the batches, in order (`mark M`, `apply`).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// How many reads it answered.
    pub fn reads(&self) -> u64 {
        self.state().reads
    }
}

/// Why the memory backend failed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The error a test set ([`Memory::fail`], [`Memory::unreadable`]).
    #[error("{0}")]
    Set(String),
    /// A change to a place it has no table for.
    #[error("no table {0:?}")]
    NoTable(Option<String>),
    /// A prefix's place has no table ([`Backend::missing_table`]).
    #[error("no table {0:?} in the memory backend")]
    Missing(Option<String>),
    /// A change it took but does not show ([`Backend::not_applied`]).
    #[error("the memory backend took the change but does not show it")]
    NotApplied,
}

impl Backend for Memory {
    type Installed = Snapshot;
    type Error = MemoryError;

    fn id(&self) -> &BackendId {
        &self.id
    }

    async fn read(&self) -> Result<Snapshot, MemoryError> {
        let mut state = self.state();
        if let Some(e) = &state.unreadable {
            return Err(MemoryError::Set(e.clone()));
        }
        state.reads += 1;
        Ok(state.installed.clone())
    }

    fn batches(&self, _: &Snapshot, changes: &[Change]) -> Vec<std::ops::Range<usize>> {
        let max = self.state().max_batch;
        (0..changes.len())
            .step_by(max)
            .map(|start| start..(start + max).min(changes.len()))
            .collect()
    }

    /// Applies in order and stops at the first failing change (as a daemon's shell does).
    async fn apply(
        &self,
        _: &Snapshot,
        changes: &[Change],
        _: &[PrefixKey],
    ) -> Result<(), MemoryError> {
        let mut state = self.state();
        state.applied.push(changes.to_vec());
        state.calls.push("apply".into());
        if let Some(e) = state.vanish_on_apply.take() {
            state.unreadable = Some(e.clone());
            return Err(MemoryError::Set(e));
        }
        for change in changes {
            if let Some(e) = state.failing.get(&change.prefix) {
                return Err(MemoryError::Set(e.clone()));
            }
            let Some(table) = state.installed.tables.get_mut(&change.place) else {
                return Err(MemoryError::NoTable(change.place.name().map(str::to_owned)));
            };
            let key = (change.place.clone(), change.prefix);
            if change.announce {
                table.insert(change.prefix);
                let attributes = change.attributes.clone().normalized();
                if attributes.is_plain() || state.drop_attributes {
                    state.installed.attributes.remove(&key);
                } else {
                    state.installed.attributes.insert(key, attributes);
                }
            } else {
                table.remove(&change.prefix);
                state.installed.attributes.remove(&key);
            }
        }
        Ok(())
    }

    async fn inspect(&self, prefixes: &[PrefixKey]) -> Result<Vec<Shown>, MemoryError> {
        let installed = self.read().await?;
        Ok(prefixes
            .iter()
            .map(|(place, prefix)| {
                let configured = installed.contains(place, prefix);
                Shown {
                    advertised: configured.then(|| installed.attributes(place, prefix)),
                    installed: configured.then(|| installed.attributes(place, prefix)),
                    configured,
                    valid: configured,
                    established_peers: 1,
                }
            })
            .collect())
    }

    fn missing_table(&self, place: &Place) -> MemoryError {
        MemoryError::Missing(place.name().map(str::to_owned))
    }

    fn not_applied(&self, _: bool) -> MemoryError {
        MemoryError::NotApplied
    }

    fn runtime_file(&self) -> Result<Option<super::RuntimeFile>, RuntimeFileUnknown> {
        Ok(self
            .state()
            .runtime_file
            .clone()
            .map(|path| super::RuntimeFile {
                path,
                origin: "the test",
                hint: String::new(),
            }))
    }

    fn kept_beside(&self) -> Option<&dyn KeptBeside<Snapshot, MemoryError>> {
        Some(self)
    }

    fn reconfigurations(&self) -> Option<&dyn Reconfigurations> {
        Some(self)
    }
}

/// Keeps nothing beside: it records each [`KeptBeside::offline`] among its calls.
impl KeptBeside<Snapshot, MemoryError> for Memory {
    fn tidy<'a>(&'a self, _: &'a Snapshot, _: &'a [(PrefixKey, bool)]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn offline<'a>(&'a self, wanted: &'a [(PrefixKey, bool)]) -> BoxFuture<'a, ()> {
        let list: Vec<String> = wanted
            .iter()
            .map(|((_, prefix), announce)| format!("{prefix}{}", if *announce { "+" } else { "-" }))
            .collect();
        self.state()
            .calls
            .push(format!("offline {}", list.join(" ")));
        Box::pin(async {})
    }

    fn known_while_down(&self, _: &MemoryError, _: &PrefixKey) -> Option<String> {
        None
    }
}

/// The mark a test set with [`Memory::reconfigure`], each look recorded among its calls.
impl Reconfigurations for Memory {
    fn mark(&self) -> BoxFuture<'_, Option<String>> {
        let mark = {
            let mut state = self.state();
            state
                .mark
                .clone()
                .inspect(|mark| state.calls.push(format!("mark {mark}")))
        };
        Box::pin(async move { mark })
    }
}

/// The tables of a snapshot as a map, for assertions.
pub fn tables(snapshot: &Snapshot) -> BTreeMap<Option<String>, Vec<String>> {
    snapshot
        .tables
        .iter()
        .map(|(place, set)| {
            (
                place.name().map(str::to_owned),
                set.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}
