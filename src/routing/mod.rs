//! Routing daemons: the seam every backend fits ([`Backend`]), the kind-neutral
//! level-triggered [`writer`] that converges a backend to the services' decisions, the
//! start-up [`reconcile`]iation, and one folder per backend: [`frr`] (vtysh, the running
//! config, the advertised view) and [`memory`] (an in-process backend for tests).
//!
//! A backend is identified by a [`BackendId`] (its kind and instance: the vtysh binary for
//! FRR). It can read what is installed ([`Backend::read`]: per VRF or table, whether it exists
//! and which prefixes it has), apply an ordered batch of changes in calls of its choosing
//! ([`Backend::batches`], [`Backend::apply`]), and show what it advertises
//! ([`Backend::inspect`]). The writer decides *what* to change and *when*; the backend only
//! *how*. A backend never creates an instance or table: a prefix whose table is missing is an
//! error for that prefix alone.
//!
//! Adding a backend: a folder here with a type implementing [`Backend`], a [`BackendKind`]
//! variant, its settings in [`Settings`] (filled in from its config section in `config/`),
//! and one arm in each of [`spawn_writer`], [`read`] and [`inspect`].

pub mod bird;
pub mod frr;
pub mod gobgp;
pub mod memory;
pub mod reconcile;
pub mod writer;

use anycastd_journal::wire;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

/// A kind of routing daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackendKind {
    /// FRRouting, through vtysh.
    Frr,
    /// BIRD 2 or 3, through its control socket.
    Bird,
    /// GoBGP (gobgpd 3.x), through its gRPC API.
    Gobgp,
    /// In this process, for tests ([`memory`]); not reachable from a config file.
    Memory,
}

impl BackendKind {
    /// Its name in the journal: `frr`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Frr => "frr",
            BackendKind::Bird => "bird",
            BackendKind::Gobgp => "gobgp",
            BackendKind::Memory => "memory",
        }
    }

    /// The kind a journal name stands for.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        match name {
            "frr" => Some(BackendKind::Frr),
            "bird" => Some(BackendKind::Bird),
            "gobgp" => Some(BackendKind::Gobgp),
            "memory" => Some(BackendKind::Memory),
            _ => None,
        }
    }

    /// Its name in messages: `FRR`.
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Frr => "FRR",
            BackendKind::Bird => "BIRD",
            BackendKind::Gobgp => "GoBGP",
            BackendKind::Memory => "the memory backend",
        }
    }
}

/// One routing daemon instance anycastd writes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId {
    /// Its kind.
    pub kind: BackendKind,
    /// Which one: the vtysh binary for FRR, the control socket for BIRD, the API address
    /// for GoBGP, a name for the memory backend.
    pub instance: String,
}

impl BackendId {
    /// The FRR reached through the vtysh binary `vtysh`.
    pub fn frr(vtysh: impl AsRef<std::path::Path>) -> BackendId {
        BackendId {
            kind: BackendKind::Frr,
            instance: vtysh.as_ref().display().to_string(),
        }
    }

    /// The BIRD reached through the control socket `socket`.
    pub fn bird(socket: impl AsRef<std::path::Path>) -> BackendId {
        BackendId {
            kind: BackendKind::Bird,
            instance: socket.as_ref().display().to_string(),
        }
    }

    /// The gobgpd whose gRPC API is at `api` (`HOST:PORT`).
    pub fn gobgp(api: &str) -> BackendId {
        BackendId {
            kind: BackendKind::Gobgp,
            instance: api.to_owned(),
        }
    }

    /// The memory backend called `name`.
    pub fn memory(name: &str) -> BackendId {
        BackendId {
            kind: BackendKind::Memory,
            instance: name.to_owned(),
        }
    }
}

/// In messages: the instance (for FRR, its vtysh binary, as the logs always named it), with
/// the kind in front for other kinds.
impl std::fmt::Display for BackendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            BackendKind::Frr => f.write_str(&self.instance),
            kind => write!(f, "{}:{}", kind.name(), self.instance),
        }
    }
}

/// A prefix of a service, and where it is announced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The network (host bits zero).
    pub prefix: IpNet,
    /// Where within its backend: the VRF for FRR (`None` = the default one), the static
    /// protocol for BIRD (always named).
    pub vrf: Option<String>,
    /// The backend that announces it.
    pub backend: BackendId,
}

impl Route {
    /// Its place within its backend.
    pub fn key(&self) -> PrefixKey {
        (self.vrf.clone(), self.prefix)
    }

    /// The journal's name for it.
    pub fn journal_ref(&self) -> wire::PrefixRef {
        wire::PrefixRef {
            backend: self.backend.kind.name().to_owned(),
            instance: self.backend.instance.clone(),
            vrf: self.vrf.clone(),
            prefix: self.prefix.to_string(),
        }
    }

    /// The route a journal reference names (`None` if its backend kind is unknown to this
    /// build or its prefix does not parse).
    pub fn of_journal_ref(r: &wire::PrefixRef) -> Option<Route> {
        Some(Route {
            prefix: r.prefix.parse().ok()?,
            vrf: r.vrf.clone(),
            backend: BackendId {
                kind: BackendKind::from_name(&r.backend)?,
                instance: r.instance.clone(),
            },
        })
    }
}

/// A prefix within one backend: (VRF or table, network).
pub type PrefixKey = (Option<String>, IpNet);

/// One change the writer asks of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The VRF or table.
    pub vrf: Option<String>,
    /// The network.
    pub prefix: IpNet,
    /// Announce (true) or withdraw.
    pub announce: bool,
}

/// What a backend has installed, as read in one go.
pub trait Installed: Send + Sync + 'static {
    /// Whether the instance or table of `vrf` exists.
    fn has_table(&self, vrf: &Option<String>) -> bool;
    /// Whether `prefix` is installed in `vrf`.
    fn contains(&self, vrf: &Option<String>, prefix: &IpNet) -> bool;
    /// A copy in the common form.
    fn snapshot(&self) -> Snapshot;
}

/// What a backend has installed, in a form every backend shares: per existing VRF or table,
/// its prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The tables that exist, with their prefixes.
    pub tables: BTreeMap<Option<String>, BTreeSet<IpNet>>,
}

impl Installed for Snapshot {
    fn has_table(&self, vrf: &Option<String>) -> bool {
        self.tables.contains_key(vrf)
    }

    fn contains(&self, vrf: &Option<String>, prefix: &IpNet) -> bool {
        self.tables.get(vrf).is_some_and(|t| t.contains(prefix))
    }

    fn snapshot(&self) -> Snapshot {
        self.clone()
    }
}

/// What a backend shows of one prefix (`status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shown {
    /// Installed (for FRR: a `network` statement in the running config).
    pub configured: bool,
    /// A valid best path exists for it.
    pub valid: bool,
    /// Established peers in its VRF and address family.
    pub established_peers: usize,
}

/// One routing daemon as the writer, the start-up reconciliation and `status` use it.
pub trait Backend: Send + Sync + 'static {
    /// What one read returns.
    type Installed: Installed;
    /// Why a call failed.
    type Error: std::fmt::Display + Send + 'static;

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
    /// writer wants withdrawn now, in this batch or waiting for a retry (BIRD keeps them out
    /// of the include files it writes, whatever the batch).
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

    /// The error of a prefix whose VRF or table does not exist.
    fn missing_table(&self, vrf: &Option<String>) -> String;

    /// The error of a failed read.
    fn unreadable(&self, error: &Self::Error) -> String;

    /// The error of a change that a call reported as applied but a read-back does not show:
    /// an announcement (`announce`) that is missing, or a withdrawal still there.
    fn not_applied(&self, announce: bool) -> String;

    /// After a fresh read, for the tables with nothing to change: bring whatever the backend
    /// keeps beside the daemon in line with what the daemon has, in the tables of `wanted` (each prefix
    /// and whether it is to be announced), less the withdrawals wanted that the daemon has
    /// not taken yet (BIRD: the include files, which then withdraw them at the daemon's next
    /// configure or start). Never changes what is announced.
    fn tidy(
        &self,
        installed: &Self::Installed,
        wanted: &[(PrefixKey, bool)],
    ) -> impl Future<Output = ()> + Send {
        let _ = (installed, wanted);
        async {}
    }

    /// The backend could not be read: record `wanted` (each prefix and whether it is to be
    /// announced) wherever the daemon will read it when it returns (BIRD: the include files,
    /// loaded when BIRD starts), so that it does not come back with what health withdrew
    /// meanwhile. Never changes a running daemon.
    fn offline(&self, wanted: &[(PrefixKey, bool)]) -> impl Future<Output = ()> + Send {
        let _ = wanted;
        async {}
    }

    /// The backend could not be read with `error`: what is known of the withdrawal of `key`
    /// all the same, in words, to follow the error (BIRD not running: whether the include
    /// file it loads when it starts leaves the route out). The withdrawal still fails, as
    /// any change the daemon could not be asked for and read back: it is retried, and
    /// verified once the daemon answers. `None`: nothing more is known.
    fn known_while_down(&self, error: &Self::Error, key: &PrefixKey) -> Option<String> {
        let _ = (error, key);
        None
    }

    /// A mark that changes whenever the daemon loads a new configuration, whoever asked
    /// for it (BIRD: the time `show status` gives as its last reconfiguration). While
    /// changes are set aside after a failure, the writer looks at it every
    /// [`writer::WATCH_INTERVAL`] and retries them at once when it changes: whatever made
    /// them fail (a syntax error in the daemon's own configuration) may have been fixed.
    /// `None`: no such mark, or the daemon did not answer; retries keep their backoff.
    fn reconfigured(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }

    /// A file the daemon re-creates whenever it starts (its control socket): the writer
    /// looks at it every [`writer::WATCH_INTERVAL`] and re-reads at once when it is a new
    /// one. `Ok(None)`: the backend has no such file; `Err`: it cannot be known where it is
    /// (why, and what the operator can do). Either way drift is found by the periodic pass
    /// alone, and an `Err` is said at start and in `status`.
    fn runtime_file(&self) -> Result<Option<RuntimeFile>, String> {
        Ok(None)
    }

    /// For a daemon without a runtime file: a number that changes whenever a new process of
    /// the daemon answers (GoBGP: how many times its API's event stream opened), `None`
    /// while none answers. The writer looks at it every [`writer::WATCH_INTERVAL`], as at
    /// the runtime file, and takes a new number for a restart. The first look may wait for
    /// the daemon (within its time limit). `None` always: no such mark.
    fn incarnation(&self) -> impl Future<Output = Option<u64>> + Send {
        async { None }
    }

    /// The daemon that [`Backend::runtime_file`] belongs to, in words (`bgpd`).
    fn daemon_name(&self) -> &'static str {
        self.id().kind.label()
    }
}

/// The file whose re-creation tells that the routing daemon restarted
/// ([`Backend::runtime_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFile {
    /// Where it is.
    pub path: std::path::PathBuf,
    /// How that was found out, in words (`vtysh_args`, `FRR's default`).
    pub origin: &'static str,
    /// What the operator can do when it is not there while the daemon answers.
    pub hint: String,
}

/// How to reach each kind of backend, from the config.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// FRR's.
    pub frr: frr::Settings,
    /// BIRD's.
    pub bird: bird::Settings,
    /// GoBGP's.
    pub gobgp: gobgp::Settings,
}

/// How often the writer of a memory backend reads it afresh.
const MEMORY_RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

impl Settings {
    /// How often the writers of a kind read their backend afresh and repair drift.
    pub fn reconcile_interval(&self, kind: BackendKind) -> Duration {
        match kind {
            BackendKind::Frr => self.frr.reconcile_interval,
            BackendKind::Bird => self.bird.reconcile_interval,
            BackendKind::Gobgp => self.gobgp.reconcile_interval,
            BackendKind::Memory => MEMORY_RECONCILE_INTERVAL,
        }
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
    match id.kind {
        BackendKind::Frr => {
            crate::observe::metrics::vtysh_counters(&id.instance);
            writer::spawn(frr::Frr::new(id, &settings.frr), interval, reports)
        }
        BackendKind::Bird => {
            crate::observe::metrics::bird_counters(&id.instance);
            writer::spawn(bird::Bird::new(id, &settings.bird), interval, reports)
        }
        BackendKind::Gobgp => {
            writer::spawn(gobgp::Gobgp::new(id, &settings.gobgp), interval, reports)
        }
        BackendKind::Memory => {
            writer::spawn(memory::Memory::named(&id.instance), interval, reports)
        }
    }
}

/// Read what backend `id` has installed.
pub async fn read(settings: &Settings, id: &BackendId) -> Result<Snapshot, String> {
    async fn of<B: Backend>(backend: B) -> Result<Snapshot, String> {
        match backend.read().await {
            Ok(installed) => Ok(installed.snapshot()),
            Err(e) => Err(e.to_string()),
        }
    }
    match id.kind {
        BackendKind::Frr => of(frr::Frr::new(id, &settings.frr)).await,
        BackendKind::Bird => of(bird::Bird::new(id, &settings.bird)).await,
        BackendKind::Gobgp => of(gobgp::Gobgp::new(id, &settings.gobgp)).await,
        BackendKind::Memory => of(memory::Memory::named(&id.instance)).await,
    }
}

/// Show what backend `id` installed and advertises of `prefixes`.
pub async fn inspect(
    settings: &Settings,
    id: &BackendId,
    prefixes: &[PrefixKey],
) -> Result<Vec<Shown>, String> {
    async fn of<B: Backend>(backend: B, prefixes: &[PrefixKey]) -> Result<Vec<Shown>, String> {
        backend.inspect(prefixes).await.map_err(|e| e.to_string())
    }
    match id.kind {
        BackendKind::Frr => of(frr::Frr::new(id, &settings.frr), prefixes).await,
        BackendKind::Bird => of(bird::Bird::new(id, &settings.bird), prefixes).await,
        BackendKind::Gobgp => of(gobgp::Gobgp::new(id, &settings.gobgp), prefixes).await,
        BackendKind::Memory => of(memory::Memory::named(&id.instance), prefixes).await,
    }
}
