//! `anycastd run`: the wiring of the daemon (docs/ARCHITECTURE.md, "Start-up and
//! shutdown"). [`run`] puts the parts together, step by step; each phase has its file:
//!
//! - `startup.rs`: take the journal (exit 69 when another process holds it; any other journal
//!   problem is logged and the daemon runs without an audit trail, because announcements
//!   must not depend on it), journal the start with every service's effective parameters,
//!   reconcile with the backends, start one writer per backend and one driver per service;
//! - `reporter.rs`: the writers' outcomes become journal records;
//! - `reload.rs`: SIGHUP and `anycastd reload`;
//! - `shutdown.rs`: on SIGINT/SIGTERM every service goes `Draining(Shutdown)` (journaled),
//!   every managed prefix is withdrawn and verified by read-back, bounded by
//!   `shutdown_timeout`. Exit 0 only when every withdrawal is verified; otherwise 70, naming
//!   what is left. A second signal ends at once with 70. The stop is journaled either way.
//!
//! Signals and systemd's notifications are here.

mod reload;
mod reporter;
mod shutdown;
mod startup;

use crate::config::Config;
use crate::control::ReloadRequest;
use crate::control::{self, StopRequest};
use crate::exit;
use crate::journal_handle::{now_ms, JournalHandle};
use crate::observe::status::ServiceView;
use crate::routing::reconcile::{self, Plan};
use crate::routing::writer::{Decision, Notice, Outcome, Report, Restart, WriterHandle};
use crate::routing::{self, BackendId};
use crate::service::driver::{self, prefix_ref, Command, DriverHandle};
use crate::service::driver::{Shared, Start, Views, Writers};
use anycastd_journal::wire::ReconcileDecision;
use anycastd_journal::LastState;
use anycastd_journal::Record;
use anycastd_journal::{wire, Committer, Journal};
use reporter::{flush_reports, journal_reports};
use shutdown::{hand_over, shutdown};
use startup::reconcile_at_start;
pub use startup::Prior;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::broadcast;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The kernel's boot id (changes on every boot), or empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The flap-damping parameters of the services that have damping (journaled after every
/// start and reload, beside the other parameters, for replay).
pub fn service_damping(config: &Config) -> Vec<wire::Event> {
    config
        .services
        .iter()
        .filter_map(|s| {
            s.damping.as_ref().map(|d| {
                wire::Event::ServiceDamping(wire::ServiceDamping {
                    service: s.name.clone(),
                    params: Some(d.into()),
                })
            })
        })
        .collect()
}

/// The effective parameters of every service, as journaled at start.
pub fn service_params(config: &Config) -> Vec<wire::ServiceParams> {
    config.services.iter().map(driver::wire_params).collect()
}

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub(super) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    pub(super) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Why the daemon could not start (its exit code: its [`crate::exit::Coded`] impl).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// Another daemon holds the journal (exit 69).
    #[error("journal {} is held by another anycastd (pid {pid}); only one may run", path.display())]
    JournalLocked {
        /// The journal.
        path: PathBuf,
        /// The holder.
        pid: u32,
    },
    /// The control socket could not be bound.
    #[error(transparent)]
    Control(control::BindError),
    /// The metrics endpoint could not be bound.
    #[error(transparent)]
    Metrics(crate::observe::endpoint::BindError),
    /// The checks' HTTP client could not be made.
    #[error("cannot create the HTTP client: {0}")]
    HttpClient(String),
}

impl exit::Coded for StartError {
    fn code(&self) -> u8 {
        match self {
            StartError::JournalLocked { .. } => exit::UNAVAILABLE,
            StartError::Signals(_)
            | StartError::Control(_)
            | StartError::Metrics(_)
            | StartError::HttpClient(_) => exit::SOFTWARE,
        }
    }
}

/// Run the daemon until a signal or `anycastd stop`; returns its exit code (0, or 70 when a
/// withdrawal was not verified), or why it could not start. The steps, in start-up order:
/// signals, the journal and the endpoints (`Endpoints::open`), the start journaled, the
/// reconciliation, writers and drivers (`Daemon::start`), then serving until stopped and
/// the stop (`Daemon::stop`).
pub async fn run(config: Config, config_path: &Path) -> Result<u8, StartError> {
    // Signals first: a SIGTERM during start-up must still withdraw.
    let (mut signals, mut hup) = Signals::install()
        .and_then(|s| Ok((s, signal(SignalKind::hangup())?)))
        .map_err(StartError::Signals)?;
    let (tap, _) = broadcast::channel::<Record>(control::FOLLOW_BUFFER);
    let mut endpoints = Endpoints::open(&config, &tap).await?;
    crate::observe::metrics::journal_counters();
    crate::observe::metrics::build_info();
    if config.fleet.is_some() {
        // The fleet guard starts after the reconciliation and cannot count the fleet before
        // it has connected: blind (1) from the first scrape, never absent.
        crate::observe::metrics::set("anycastd_fleet_guard_blind", &[], 1.0);
    }
    let reset = endpoints.reset.take();
    let rebooted =
        startup::journal_start(&config, &endpoints.prior, reset, &endpoints.journal).await;
    tracing::info!(
        config = %config_path.display(),
        services = config.services.len(),
        journal = %config.journal.path.display(),
        "anycastd {} started.",
        env!("CARGO_PKG_VERSION")
    );
    let probes = match crate::checks::Kinds::new() {
        Ok(mut kinds) => {
            kinds.namespaces = crate::checks::netns::Namespaces::new(&config.netns_dir);
            kinds.factory()
        }
        Err(e) => return Err(StartError::HttpClient(e.to_string())),
    };
    let mut daemon = Daemon::start(config, config_path, endpoints, &tap, probes, rebooted).await;
    let (reason, stop_request) = daemon
        .running
        .until_stopped(
            &mut daemon.drivers,
            &mut signals,
            &mut hup,
            &mut daemon.reload_rx,
            &mut daemon.stop_rx,
        )
        .await;
    Ok(daemon.stop(&reason, stop_request, &mut signals).await)
}

/// What the daemon opens before anything runs: the journal (and what it said before this
/// start), the hook runner, the control socket and the metrics endpoint.
struct Endpoints {
    journal: JournalHandle,
    prior: Prior,
    reader: Option<anycastd_journal::Reader>,
    reset: Option<wire::JournalReset>,
    hooks: Option<tokio::task::JoinHandle<()>>,
    listener: tokio::net::UnixListener,
    read_gid: Option<u32>,
    admin_gid: Option<u32>,
    site: Arc<crate::observe::endpoint::Site>,
    metrics_server: Option<tokio::task::JoinHandle<()>>,
}

impl Endpoints {
    /// Take the journal (another daemon's: an error), start the hooks, bind the control
    /// socket and the metrics endpoint (its failure removes the socket again).
    async fn open(
        config: &Config,
        tap: &broadcast::Sender<Record>,
    ) -> Result<Endpoints, StartError> {
        let (journal, prior, reader, reset) = startup::open_journal(config, tap)?;
        // Hooks see every transition from the first (the start-up's) on.
        let hooks = crate::hooks::spawn(config.hooks.clone(), tap.subscribe(), journal.clone());
        let (listener, read_gid, admin_gid) =
            control::bind(&config.control).map_err(StartError::Control)?;
        let site = Arc::new(crate::observe::endpoint::Site::default());
        let metrics_server = match &config.metrics_listen {
            Some(listen) => match crate::observe::endpoint::bind(listen).await {
                Ok(listener) => Some(crate::observe::endpoint::serve(listener, site.clone())),
                Err(e) => {
                    let _ = std::fs::remove_file(&config.control.socket);
                    return Err(StartError::Metrics(e));
                }
            },
            None => None,
        };
        Ok(Endpoints {
            journal,
            prior,
            reader,
            reset,
            hooks,
            listener,
            read_gid,
            admin_gid,
            site,
            metrics_server,
        })
    }
}

/// The running daemon: its parts, kept for the stop.
struct Daemon {
    running: Running,
    drivers: Drivers,
    writers: Writers,
    journal: JournalHandle,
    reporter: tokio::task::JoinHandle<()>,
    flush_tx: mpsc::Sender<oneshot::Sender<()>>,
    reload_rx: mpsc::Receiver<ReloadRequest>,
    stop_rx: mpsc::Receiver<StopRequest>,
    server: tokio::task::JoinHandle<()>,
    metrics_server: Option<tokio::task::JoinHandle<()>>,
    hooks: Option<tokio::task::JoinHandle<()>>,
    status_task: tokio::task::JoinHandle<()>,
    notifier: Arc<crate::notify::Notifier>,
}

impl Daemon {
    /// Reconcile before the first check (docs/ARCHITECTURE.md, "Start-up reconciliation"),
    /// then start the journal reporter, one writer per backend, the control socket's server
    /// and one driver per service, and tell systemd.
    async fn start(
        config: Config,
        config_path: &Path,
        endpoints: Endpoints,
        tap: &broadcast::Sender<Record>,
        probes: crate::checks::Factory,
        rebooted: bool,
    ) -> Daemon {
        let Endpoints {
            journal,
            prior,
            reader,
            hooks,
            listener,
            read_gid,
            admin_gid,
            site,
            metrics_server,
            ..
        } = endpoints;
        let plan = reconcile_at_start(&config, &prior, rebooted, &journal).await;
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (flush_tx, flush_rx) = mpsc::channel(1);
        let reporter = tokio::spawn(journal_reports(reports_rx, flush_rx, journal.clone()));
        let writer_map = startup::spawn_writers(&config, &plan, &reports_tx);
        plan.hand_to(&config, &writer_map);
        let writers: Writers = Arc::new(Mutex::new(writer_map));
        let views: Views = Arc::new(Mutex::new(startup::initial_views(&config, &plan, &prior)));
        let (stop_tx, stop_rx) = mpsc::channel::<StopRequest>(1);
        let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(1);
        let shared_config = Arc::new(Mutex::new(Arc::new(config.clone())));
        let driver_commands: control::DriverCommands = Arc::default();
        let fleet = config.fleet.clone().map(crate::fleet::guard::spawn);
        match &fleet {
            Some(fleet) => tracing::info!("{}", fleet.status_line()),
            None => tracing::info!("{}", crate::fleet::guard::OFF_LINE),
        }
        let context = Arc::new(control::Context {
            fleet: fleet.clone(),
            reader,
            tap: tap.clone(),
            views: views.clone(),
            config: shared_config.clone(),
            stop: stop_tx,
            reload: reload_tx,
            drivers: driver_commands.clone(),
            journal: journal.clone(),
            writers: writers.clone(),
            read_gid,
            admin_gid,
        });
        let server = control::serve(listener, context.clone());
        site.ready(context);
        let shared = Shared {
            writers: writers.clone(),
            journal: journal.clone(),
            polling: crate::checks::scheduler::Polling::new(),
            probes,
            views: views.clone(),
            fleet,
        };
        let mut drivers = Drivers::new(driver_commands);
        for driver in startup::spawn_drivers(&config, &plan, &prior, &shared) {
            drivers.add(driver);
        }
        // systemd: ready once reconciled; then STATUS on changes and watchdog keep-alives.
        let notifier = Arc::new(crate::notify::Notifier::from_env());
        let status_task = systemd_status(&notifier, &views, &plan.plan.record.unreadable);
        Daemon {
            running: Running {
                config,
                path: config_path.to_path_buf(),
                reports: reports_tx,
                shared,
                shared_config,
            },
            drivers,
            writers,
            journal,
            reporter,
            flush_tx,
            reload_rx,
            stop_rx,
            server,
            metrics_server,
            hooks,
            status_task,
            notifier,
        }
    }

    /// Stop for `reason`: hand over (`stop --keep-announced`) or shut down (withdraw and
    /// verify), stop the servers, answer the stop request, journal what is queued and close
    /// the journal. Returns the exit code.
    async fn stop(
        self,
        reason: &str,
        stop_request: Option<StopRequest>,
        signals: &mut Signals,
    ) -> u8 {
        let config = self.running.config.clone();
        let writers: HashMap<BackendId, WriterHandle> = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tracing::info!("Received {reason}, terminating.");
        self.status_task.abort();
        self.notifier.send("STOPPING=1\nSTATUS=stopping");
        let journal = &self.journal;
        let mut requests = self.stop_rx;
        let mut stop = shutdown::Stop {
            reason,
            grace: stop_request.as_ref().and_then(|r| r.grace),
            requests: &mut requests,
            later: Vec::new(),
        };
        let fleet = self.running.shared.fleet.clone();
        let (code, left) = if stop_request.as_ref().is_some_and(|r| r.keep_announced) {
            // Handed over: the prefixes stay announced, and so do this site's records (they
            // are true; the next start publishes again under a lease of its own).
            (
                hand_over(reason, self.drivers.into_handles(), journal).await,
                Vec::new(),
            )
        } else {
            let stopped = shutdown(
                &config,
                &mut stop,
                self.drivers.into_handles(),
                &writers,
                journal,
                &self.flush_tx,
                signals,
            )
            .await;
            // Withdrawn (never held by the guard: a stop is intent): this site leaves the
            // fleet at once rather than when its lease would end.
            if let Some(fleet) = &fleet {
                fleet.stop(crate::fleet::store::REQUEST_TIMEOUT).await;
            }
            stopped
        };
        self.server.abort();
        if let Some(metrics) = self.metrics_server {
            metrics.abort();
        }
        if let Some(hooks) = self.hooks {
            hooks.abort();
        }
        let _ = std::fs::remove_file(&config.control.socket);
        for request in stop_request.into_iter().chain(stop.later) {
            let _ = request.done.send((
                code,
                stop_message(code, request.keep_announced),
                left.clone(),
            ));
        }
        drop(writers);
        // The writer tasks outlive their handles, so the reporter's channel never closes: ask
        // it to journal what is queued, then stop it.
        flush_reports(&self.flush_tx, std::time::Duration::from_secs(1)).await;
        self.reporter.abort();
        self.journal.close();
        code
    }
}

/// What a reload needs of the running daemon.
pub(super) struct Running {
    config: Config,
    path: PathBuf,
    reports: mpsc::UnboundedSender<Notice>,
    shared: Shared,
    shared_config: Arc<Mutex<Arc<Config>>>,
}

/// Tell systemd the daemon is ready (with the backends it could not read at start-up), then
/// keep its STATUS line current and the watchdog fed. The task runs until aborted.
fn systemd_status(
    notifier: &Arc<crate::notify::Notifier>,
    views: &Views,
    unreadable: &[(String, String)],
) -> tokio::task::JoinHandle<()> {
    let unreachable_note = if unreadable.is_empty() {
        String::new()
    } else {
        format!(
            "; unreachable: {}",
            unreadable
                .iter()
                .map(|(v, _)| crate::audit::text::backend_text(v))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let first_status = {
        let views = views.lock().unwrap_or_else(|p| p.into_inner());
        crate::notify::status_line(views.values().map(|v| &v.state))
    };
    notifier.send(&format!("READY=1\nSTATUS={first_status}{unreachable_note}"));
    let (notifier, views) = (notifier.clone(), views.clone());
    let watchdog = crate::notify::watchdog_interval();
    tokio::spawn(async move {
        let tick = watchdog
            .map(|w| (w / 2).min(std::time::Duration::from_secs(1)))
            .unwrap_or(std::time::Duration::from_secs(1));
        let mut last = first_status;
        loop {
            tokio::time::sleep(tick).await;
            if watchdog.is_some() {
                notifier.send("WATCHDOG=1");
            }
            let line = {
                let views = views.lock().unwrap_or_else(|p| p.into_inner());
                crate::notify::status_line(views.values().map(|v| &v.state))
            };
            if line != last {
                notifier.send(&format!("STATUS={line}"));
                last = line;
            }
        }
    })
}

/// What `anycastd stop` is told once the daemon has stopped.
fn stop_message(code: u8, keep_announced: bool) -> String {
    match (code == exit::OK, keep_announced) {
        (true, true) => "stopped; prefixes left announced for the next start".to_owned(),
        (true, false) => "stopped; every prefix withdrawn".to_owned(),
        (false, _) => {
            "stopped; some prefixes could not be verified withdrawn (see the daemon's log)"
                .to_owned()
        }
    }
}

impl Running {
    /// Serve reloads (SIGHUP, `reload`) until a signal or `anycastd stop`; returns why it
    /// stopped and the stop request to answer, if any (journaled as an operator action).
    async fn until_stopped(
        &mut self,
        drivers: &mut Drivers,
        signals: &mut Signals,
        hup: &mut Signal,
        reload_rx: &mut mpsc::Receiver<ReloadRequest>,
        stop_rx: &mut mpsc::Receiver<StopRequest>,
    ) -> (String, Option<StopRequest>) {
        loop {
            tokio::select! {
                reason = signals.next() => return (reason.to_owned(), None),
                _ = hup.recv() => {
                    tracing::info!("Received SIGHUP, reloading the configuration.");
                    // A rejection is logged (each reason once) and journaled by the reload.
                    let _ = self.reload(drivers, None).await;
                }
                Some(request) = reload_rx.recv() => {
                    let result = self.reload(drivers, Some(request.uid)).await;
                    let _ = request.done.send(result);
                }
                Some(request) = stop_rx.recv() => {
                    let kind = if request.keep_announced {
                        wire::OperatorKind::Handover
                    } else {
                        wire::OperatorKind::Stop
                    };
                    let action = wire::OperatorAction { kind, uid: request.uid, pid: request.pid };
                    let record = vec![wire::Event::Operator(action)];
                    if let Err(e) = self.shared.journal.append_durable(now_ms(), record).await {
                        tracing::error!(error = %e, "cannot journal the operator's stop");
                    }
                    let what = if request.keep_announced { "stop --keep-announced" } else { "stop" };
                    return (format!("{what} (uid {})", request.uid), Some(request));
                }
            }
        }
    }
}

/// The running drivers and the command channels the control socket reaches them by, kept
/// together so that the two cannot disagree.
pub(super) struct Drivers {
    handles: Vec<DriverHandle>,
    commands: control::DriverCommands,
}

impl Drivers {
    fn new(commands: control::DriverCommands) -> Drivers {
        Drivers {
            handles: Vec::new(),
            commands,
        }
    }

    /// A driver started.
    pub(super) fn add(&mut self, handle: DriverHandle) {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle.name.clone(), handle.commands.clone());
        self.handles.push(handle);
    }

    /// A driver leaving (its service removed): no request reaches it from now on.
    pub(super) fn remove(&mut self, name: &str) -> Option<DriverHandle> {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let index = self.handles.iter().position(|d| d.name == name)?;
        Some(self.handles.remove(index))
    }

    /// The driver of service `name`.
    pub(super) fn get(&self, name: &str) -> Option<&DriverHandle> {
        self.handles.iter().find(|d| d.name == name)
    }

    /// Every driver, for the stop.
    fn into_handles(self) -> Vec<DriverHandle> {
        self.handles
    }
}
