//! `anycastd run`: start-up, the running daemon, and shutdown (DESIGN §9).
//!
//! Start-up: take the journal (exit 69 when another process holds it; any other journal
//! problem is logged and the daemon runs without an audit trail, because announcements must
//! not depend on it), journal the start with every service's effective parameters, start one
//! FRR writer per vtysh binary and one driver per service.
//!
//! Shutdown on SIGINT/SIGTERM: every service goes `Draining(Shutdown)` (journaled), every
//! managed prefix is withdrawn in batched vtysh calls and verified by read-back, bounded by
//! `shutdown_timeout`. Exit 0 only when every withdrawal is verified; otherwise 70, naming
//! what is left. A second signal ends at once with 70. The stop is journaled either way.

use crate::config::Config;
use crate::control::ReloadRequest;
use crate::control::{self, StopRequest};
use crate::exit;
use crate::journal::{now_ms, JournalHandle};
use crate::routing::reconcile::{self, Plan};
use crate::routing::writer::{Decision, Outcome, Report, WriterHandle};
use crate::routing::{self, BackendId};
use crate::service::driver::{self, prefix_ref, Command, DriverHandle};
use crate::service::driver::{Shared, Start, Views, Writers};
use crate::status::ServiceView;
use anycastd_journal::wire::ReconcileDecision;
use anycastd_journal::LastState;
use anycastd_journal::Record;
use anycastd_journal::{wire, Committer, Journal};
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
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Run the daemon until a signal; returns the exit code.
pub async fn run(config: Config, config_path: &Path) -> u8 {
    // Signals first: a SIGTERM during start-up must still withdraw.
    let (mut signals, mut hup) =
        match Signals::install().and_then(|s| Ok((s, signal(SignalKind::hangup())?))) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("anycastd: cannot install signal handlers: {e}");
                return exit::SOFTWARE;
            }
        };
    let (tap, _) = broadcast::channel::<Record>(control::FOLLOW_BUFFER);
    let mut reset: Option<wire::JournalReset> = None;
    let (journal, prior, reader) = match open_or_reset(&config.journal, &mut reset) {
        Ok((journal, prior)) => {
            let reader = journal.reader_handle();
            let sender = tap.clone();
            let retention = anycastd_journal::Retention {
                max_age_ms: Some(config.journal.max_age.as_millis() as i64),
                max_per_service: config.journal.max_records_per_service,
                max_records: config.journal.max_records,
            };
            let committer = Committer::start_with(
                journal,
                Some(Box::new(move |record: &Record| {
                    let _ = sender.send(record.clone());
                })),
                Some(retention),
            );
            (JournalHandle::new(committer), prior, Some(reader))
        }
        Err(anycastd_journal::Error::Locked { path, pid }) => {
            eprintln!(
                "anycastd: journal {} is held by another anycastd (pid {pid}); only one may run",
                path.display()
            );
            return exit::UNAVAILABLE;
        }
        Err(e) => {
            tracing::error!(
                journal = %config.journal.path.display(),
                error = %e,
                "journal unavailable: running without an audit trail; health gating goes on"
            );
            (JournalHandle::unavailable(), Prior::default(), None)
        }
    };
    let (listener, read_gid, admin_gid) = match control::bind(&config.control) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("anycastd: {e}");
            return exit::SOFTWARE;
        }
    };
    let metrics_server = match &config.metrics_listen {
        Some(listen) => match crate::metrics::bind(listen).await {
            Ok(listener) => Some(crate::metrics::serve(listener)),
            Err(e) => {
                eprintln!("anycastd: {e}");
                let _ = std::fs::remove_file(&config.control.socket);
                return exit::SOFTWARE;
            }
        },
        None => None,
    };
    let boot = boot_id();
    let rebooted = prior
        .boot_id
        .as_ref()
        .is_some_and(|previous| !boot.is_empty() && *previous != boot);
    let started = wire::DaemonStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        config_hash: config.hash.clone(),
        boot_id: boot,
        services: service_params(&config),
    };
    let mut first_records = Vec::new();
    if let Some(reset) = reset {
        first_records.push(wire::Event::JournalReset(reset));
    }
    first_records.push(wire::Event::DaemonStarted(started));
    first_records.extend(service_damping(&config));
    if let Err(e) = journal.append_durable(now_ms(), first_records).await {
        tracing::error!(error = %e, "cannot journal the start");
    }
    tracing::info!(
        config = %config_path.display(),
        services = config.services.len(),
        journal = %config.journal.path.display(),
        "anycastd {} started.",
        env!("CARGO_PKG_VERSION")
    );

    let probes = match crate::checks::Kinds::new() {
        Ok(kinds) => kinds.factory(),
        Err(e) => {
            eprintln!("anycastd: cannot create the HTTP client: {e}");
            return exit::SOFTWARE;
        }
    };

    // Reconcile before the first check (DESIGN §5).
    let plan = reconcile_at_start(&config, &prior, rebooted, &journal).await;

    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (flush_tx, flush_rx) = mpsc::channel(1);
    let reporter = tokio::spawn(journal_reports(reports_rx, flush_rx, journal.clone()));
    let mut backends: BTreeSet<BackendId> = config.prefixes_by_backend().into_keys().collect();
    backends.extend(
        plan.plan
            .withdraw
            .iter()
            .map(|(route, _)| route.backend.clone()),
    );
    let writer_map: HashMap<BackendId, WriterHandle> = backends
        .into_iter()
        .map(|id| {
            let writer = routing::spawn_writer(
                &config.routing(),
                &id,
                config.frrouting.reconcile_interval,
                reports_tx.clone(),
            );
            (id, writer)
        })
        .collect();
    plan.hand_to(&config, &writer_map);
    let writers: Writers = Arc::new(Mutex::new(writer_map));
    let views: Views = Arc::new(Mutex::new(
        config
            .services
            .iter()
            .map(|s| {
                let state = plan
                    .plan
                    .states
                    .get(&s.name)
                    .cloned()
                    .unwrap_or(anycastd_fsm::State::Starting);
                let (since_ms, cause) = start_cause(&plan, &prior, &s.name);
                let view = ServiceView {
                    suppressed: false,
                    name: s.name.clone(),
                    state: (&state).into(),
                    since_ms,
                    cause,
                };
                (s.name.clone(), view)
            })
            .collect(),
    ));
    let (stop_tx, mut stop_rx) = mpsc::channel::<StopRequest>(1);
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(1);
    let shared_config = Arc::new(Mutex::new(Arc::new(config.clone())));
    let driver_commands: Arc<Mutex<BTreeMap<String, mpsc::Sender<driver::Command>>>> =
        Arc::default();
    let server = control::serve(
        listener,
        Arc::new(control::Context {
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
        }),
    );
    let shared = Shared {
        writers: writers.clone(),
        journal: journal.clone(),
        polling: crate::checks::scheduler::Polling::new(),
        probes,
        views: views.clone(),
    };
    let mut drivers: Vec<DriverHandle> = config
        .services
        .iter()
        .map(|service| {
            let initial = plan
                .plan
                .states
                .get(&service.name)
                .cloned()
                .unwrap_or(anycastd_fsm::State::Starting);
            driver::spawn(
                Start {
                    service: service.clone(),
                    initial,
                    at_ms: plan.at_ms,
                    restored_damping: prior.damping.get(&service.name).map(|d| d.state()),
                    since: start_cause(&plan, &prior, &service.name),
                },
                shared.clone(),
            )
        })
        .collect();
    {
        let mut commands = driver_commands.lock().unwrap_or_else(|p| p.into_inner());
        for driver in &drivers {
            commands.insert(driver.name.clone(), driver.commands.clone());
        }
    }

    // systemd: ready once reconciled; then STATUS on changes and watchdog keep-alives.
    let notifier = Arc::new(crate::notify::Notifier::from_env());
    let frr_note = if plan.plan.record.unreadable.is_empty() {
        String::new()
    } else {
        format!(
            "; FRR unreachable through {}",
            plan.plan
                .record
                .unreadable
                .iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let first_status = {
        let views = views.lock().unwrap_or_else(|p| p.into_inner());
        crate::notify::status_line(views.values().map(|v| &v.state))
    };
    notifier.send(&format!("READY=1\nSTATUS={first_status}{frr_note}"));
    let status_task = {
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
    };

    let mut running = Running {
        config,
        path: config_path.to_path_buf(),
        reports: reports_tx,
        shared,
        driver_commands: driver_commands.clone(),
        shared_config,
    };
    let (reason, stop_request) = loop {
        tokio::select! {
            reason = signals.next() => break (reason.to_owned(), None),
            _ = hup.recv() => {
                tracing::info!("Received SIGHUP, reloading the configuration.");
                // A rejection is logged (each reason once) and journaled by the reload.
                let _ = running.reload(&mut drivers, None).await;
            }
            Some(request) = reload_rx.recv() => {
                let result = running.reload(&mut drivers, Some(request.uid)).await;
                let _ = request.done.send(result);
            }
            Some(request) = stop_rx.recv() => {
                let kind = if request.keep_announced { wire::OperatorKind::Handover } else { wire::OperatorKind::Stop };
                let action = wire::OperatorAction { kind, uid: request.uid, pid: request.pid };
                if let Err(e) = journal.append_durable(now_ms(), vec![wire::Event::Operator(action)]).await {
                    tracing::error!(error = %e, "cannot journal the operator's stop");
                }
                let what = if request.keep_announced { "stop --keep-announced" } else { "stop" };
                break (format!("{what} (uid {})", request.uid), Some(request));
            }
        }
    };
    let config = running.config.clone();
    let writers: HashMap<BackendId, WriterHandle> =
        writers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    tracing::info!("Received {reason}, terminating.");
    status_task.abort();
    notifier.send("STOPPING=1\nSTATUS=stopping");
    let code = if stop_request.as_ref().is_some_and(|r| r.keep_announced) {
        hand_over(&reason, drivers, &journal).await
    } else {
        shutdown(
            &config,
            &reason,
            drivers,
            &writers,
            &journal,
            &flush_tx,
            &mut signals,
        )
        .await
    };
    server.abort();
    if let Some(metrics) = metrics_server {
        metrics.abort();
    }
    let _ = std::fs::remove_file(&config.control.socket);
    if let Some(request) = stop_request {
        let message = if code == exit::OK {
            if request.keep_announced {
                "stopped; prefixes left announced for the next start".to_owned()
            } else {
                "stopped; every prefix withdrawn".to_owned()
            }
        } else {
            "stopped; some prefixes could not be verified withdrawn (see the daemon's log)"
                .to_owned()
        };
        let _ = request.done.send((code, message));
    }
    drop(writers);
    // The writer tasks outlive their handles, so the reporter's channel never closes: ask it
    // to journal what is queued, then stop it.
    flush_reports(&flush_tx, std::time::Duration::from_secs(1)).await;
    reporter.abort();
    journal.close();
    code
}

/// What the journal said before this start.
#[derive(Debug, Default)]
pub struct Prior {
    /// Last state of each service.
    pub last: BTreeMap<String, LastState>,
    /// Boot id of the previous start.
    pub boot_id: Option<String>,
    /// Last flap-damping state of each service.
    pub damping: BTreeMap<String, wire::DampingRecord>,
}

fn read_prior(journal: &Journal) -> Result<Prior, anycastd_journal::Error> {
    let last = journal.last_states()?.into_iter().collect();
    let boot_id = journal.last_start()?.map(|(_, s)| s.boot_id);
    let damping = journal
        .damping_states()?
        .into_iter()
        .map(|d| (d.service.clone(), d))
        .collect();
    // The newest record must decode too: a torn or garbled log is not trusted.
    if let Some(entry) = journal
        .entries_from(journal.next_seq().saturating_sub(1))
        .next()
    {
        entry?;
    }
    Ok(Prior {
        last,
        boot_id,
        damping,
    })
}

/// How long the daemon waits for a journal held by someone else (a client reading it while
/// no daemon ran holds it for milliseconds; another daemon holds it for good).
const JOURNAL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open the journal, waiting up to [`JOURNAL_LOCK_WAIT`] while its lock is held.
fn open_waiting(
    path: &Path,
    options: &anycastd_journal::Options,
) -> Result<Journal, anycastd_journal::Error> {
    let deadline = std::time::Instant::now() + JOURNAL_LOCK_WAIT;
    loop {
        match Journal::open(path, options) {
            Err(anycastd_journal::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Open the journal and read what it says. A journal that cannot be read (other than for
/// its lock or a filesystem error) is moved aside with a loud error and a new one started:
/// announcements must not depend on the audit store (DESIGN §4).
fn open_or_reset(
    config: &crate::config::JournalConfig,
    reset: &mut Option<wire::JournalReset>,
) -> Result<(Journal, Prior), anycastd_journal::Error> {
    let path = config.path.as_path();
    let options = config.store_options();
    let failure = match open_waiting(path, &options) {
        Ok(journal) => match read_prior(&journal) {
            Ok(prior) => return Ok((journal, prior)),
            Err(e) => e,
        },
        Err(e @ (anycastd_journal::Error::Locked { .. } | anycastd_journal::Error::Io { .. })) => {
            return Err(e)
        }
        Err(e) => e,
    };
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    if let Err(e) = std::fs::rename(path, &aside) {
        tracing::error!(journal = %path.display(), error = %e, "the journal cannot be read and cannot be moved aside");
        return Err(failure);
    }
    tracing::error!(
        journal = %path.display(),
        moved_to = %aside.display(),
        error = %failure,
        "THE JOURNAL COULD NOT BE READ: moved aside, starting a new one. The audit trail before this start is in the moved copy."
    );
    *reset = Some(wire::JournalReset {
        moved_to: aside.display().to_string(),
        reason: failure.to_string(),
    });
    let journal = Journal::open(path, &options)?;
    let prior = read_prior(&journal)?;
    Ok((journal, prior))
}

/// Since when a service is in the state it starts in, and why, in words: the
/// reconciliation's decision, an operator drain kept from before the restart (since it
/// began), or a plain start.
fn start_cause(plan: &Reconciliation, prior: &Prior, service: &str) -> (i64, String) {
    if let Some(cause) = plan.plan.causes.get(service) {
        return (plan.at_ms, crate::text::cause_text(cause));
    }
    match (plan.plan.states.get(service), prior.last.get(service)) {
        (Some(anycastd_fsm::State::Draining(_)), Some(last)) => {
            (last.at_ms, "drained (kept across the restart)".to_owned())
        }
        _ => (plan.at_ms, "started".to_owned()),
    }
}

/// The reconciliation plan, and the sequence number and time of its journal record.
struct Reconciliation {
    plan: Plan,
    seq: u64,
    /// When the services' machines start (replay starts them at this record's time too).
    at_ms: i64,
}

impl Reconciliation {
    /// Give the writers the plan's withdrawals and the restored services' announcements.
    fn hand_to(&self, config: &Config, writers: &HashMap<BackendId, WriterHandle>) {
        let mut by_backend: BTreeMap<&BackendId, Vec<_>> = BTreeMap::new();
        for (route, service) in &self.plan.withdraw {
            by_backend.entry(&route.backend).or_default().push((
                route.key(),
                Decision {
                    service: service.clone(),
                    announce: false,
                    decision_seq: self.seq,
                },
            ));
        }
        for service in &config.services {
            if self.plan.states.get(&service.name) == Some(&anycastd_fsm::State::Healthy) {
                for p in &service.prefixes {
                    by_backend.entry(&p.backend).or_default().push((
                        p.key(),
                        Decision {
                            service: service.name.clone(),
                            announce: true,
                            decision_seq: self.seq,
                        },
                    ));
                }
            }
        }
        for (backend, items) in by_backend {
            if let Some(writer) = writers.get(backend) {
                writer.set(items);
            }
        }
    }
}

async fn reconcile_at_start(
    config: &Config,
    prior: &Prior,
    rebooted: bool,
    journal: &JournalHandle,
) -> Reconciliation {
    let mut view: reconcile::View = HashMap::new();
    let configured = config.prefixes_by_backend();
    for id in reconcile::backends(configured.keys(), &prior.last) {
        let installed = routing::read(&config.routing(), &id).await;
        if let Err(e) = &installed {
            tracing::error!(vtysh = %id, error = %e, "cannot read {} at start-up; its prefixes start afresh", id.kind.label());
        }
        view.insert(id, installed);
    }
    let services: Vec<reconcile::ServiceRoutes<'_>> = config
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.prefixes.as_slice()))
        .collect();
    let plan = reconcile::plan(&services, &prior.last, rebooted, &view);
    let at = now_ms();
    let mut events = vec![wire::Event::Reconciled(plan.record.clone())];
    for (name, cause) in &plan.causes {
        let Some(service) = config.services.iter().find(|s| &s.name == name) else {
            continue;
        };
        let to = plan
            .states
            .get(name)
            .cloned()
            .unwrap_or(anycastd_fsm::State::Starting);
        let from = prior
            .last
            .get(name)
            .map(|l| l.state.clone())
            .unwrap_or(wire::State::Starting);
        events.push(wire::Event::Transition(wire::Transition {
            service: name.clone(),
            from,
            to: (&to).into(),
            cause: cause.clone(),
            healthy_streak: 0,
            unhealthy_streak: 0,
            change: if to.announces() {
                wire::Change::Announce
            } else {
                wire::Change::Withdraw
            },
            prefixes: service.prefixes.iter().map(prefix_ref).collect(),
        }));
    }
    // The decisions are the reconciliation record's, the first of the batch.
    let others = events.len().saturating_sub(1) as u64;
    let seq = match journal.append_durable(at, events).await {
        Ok(seq) => seq.saturating_sub(others),
        Err(e) => {
            tracing::error!(error = %e, "cannot journal the start-up reconciliation");
            0
        }
    };
    if rebooted {
        tracing::warn!("The host rebooted since the last start: nothing is restored, every configured prefix found in FRR is withdrawn.");
    }
    for item in &plan.record.items {
        let (decision, what) = match item.decision {
            ReconcileDecision::Kept => ("kept", "is kept announced (restored after a restart)"),
            ReconcileDecision::Adopted => ("adopted", "is adopted (configured and already in FRR)"),
            ReconcileDecision::Missing => (
                "missing",
                "is missing from FRR although announced before the restart",
            ),
            ReconcileDecision::Orphan => (
                "orphan",
                "is to be withdrawn: no longer configured (orphan)",
            ),
            ReconcileDecision::Withdrawn => (
                "withdrawn",
                "is to be withdrawn: in FRR, but not announced at the last stop",
            ),
            ReconcileDecision::Reboot => ("reboot", "is to be withdrawn: the host rebooted"),
        };
        tracing::info!(
            service = %item.service,
            prefix = %item.prefix.prefix,
            vrf = item.prefix.vrf.as_deref().unwrap_or("default"),
            decision,
            "Prefix {} of service \"{}\" {what}.",
            item.prefix.prefix,
            item.service
        );
    }
    Reconciliation {
        plan,
        seq,
        at_ms: at,
    }
}

/// Journal every apply outcome; log failures. A message on `flush` is answered once every
/// report received so far is journaled (so the stop record comes after them).
/// Have the reporter journal every outcome queued so far; waits at most `limit`.
async fn flush_reports(reporter: &mpsc::Sender<oneshot::Sender<()>>, limit: std::time::Duration) {
    let (done_tx, done_rx) = oneshot::channel();
    if reporter.send(done_tx).await.is_ok() {
        let _ = tokio::time::timeout(limit, done_rx).await;
    }
}

async fn journal_reports(
    mut reports: mpsc::UnboundedReceiver<Report>,
    mut flush: mpsc::Receiver<oneshot::Sender<()>>,
    journal: JournalHandle,
) {
    loop {
        tokio::select! {
            biased;
            report = reports.recv() => match report {
                Some(report) => {
                    // Every report waiting goes into one durable append: an operator told
                    // "FRR shows it" finds the outcome in the journal after a crash too.
                    let mut events: Vec<wire::Event> = journal_report(report).into_iter().collect();
                    while let Ok(report) = reports.try_recv() {
                        events.extend(journal_report(report));
                    }
                    journal.append_flushed(now_ms(), events);
                }
                None => return,
            },
            Some(done) = flush.recv() => {
                let mut events = Vec::new();
                while let Ok(report) = reports.try_recv() {
                    events.extend(journal_report(report));
                }
                journal.append_flushed(now_ms(), events);
                let _ = done.send(());
            }
        }
    }
}

/// The record of an FRR outcome (and its log line).
fn journal_report(report: Report) -> Option<wire::Event> {
    {
        let Report {
            backend,
            key: (vrf, prefix),
            decision,
            outcome,
        } = report;
        if let Outcome::Failed(error) = &outcome {
            tracing::warn!(
                service = %decision.service,
                prefix = %prefix,
                vrf = vrf.as_deref().unwrap_or("default"),
                error = %error,
                "Could not {} prefix {prefix}; retrying.",
                if decision.announce { "announce" } else { "denounce" }
            );
        }
        let prefix_ref = crate::routing::Route {
            prefix,
            vrf: vrf.clone(),
            backend,
        }
        .journal_ref();
        if let Outcome::Drift { present } = outcome {
            crate::metrics::count(
                "anycastd_drift_repairs_total",
                &[("service", &decision.service)],
                1.0,
            );
            tracing::warn!(
                service = %decision.service,
                prefix = %prefix,
                vrf = vrf.as_deref().unwrap_or("default"),
                present,
                "Drift: prefix {prefix} is {} in FRR although it should be {}; repairing.",
                if present { "configured" } else { "missing" },
                if decision.announce { "announced" } else { "withdrawn" }
            );
            return Some(wire::Event::Drift(wire::Drift {
                service: decision.service.clone(),
                prefix: prefix_ref,
                present,
                wanted: decision.announce,
            }));
        }
        let outcome = match outcome {
            Outcome::Drift { .. } => return None,
            Outcome::Applied => wire::Outcome::Applied,
            Outcome::AlreadySo => wire::Outcome::AlreadySo,
            Outcome::Failed(e) => wire::Outcome::Failed(e),
            Outcome::Superseded => wire::Outcome::Superseded,
        };
        Some(wire::Event::Apply(wire::Apply {
            service: decision.service.clone(),
            prefix: prefix_ref,
            change: if decision.announce {
                wire::Change::Announce
            } else {
                wire::Change::Withdraw
            },
            outcome,
            decision_seq: decision.decision_seq,
        }))
    }
}

/// What a reload needs of the running daemon.
struct Running {
    config: Config,
    path: PathBuf,
    reports: mpsc::UnboundedSender<Report>,
    shared: Shared,
    driver_commands: Arc<Mutex<BTreeMap<String, mpsc::Sender<driver::Command>>>>,
    shared_config: Arc<Mutex<Arc<Config>>>,
}

/// Keys whose change needs a restart, with their names.
fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.journal != new.journal {
        keys.push("[journal]");
    }
    if old.control != new.control {
        keys.push("[control]");
    }
    if old.frrouting != new.frrouting {
        keys.push("[frrouting]");
    }
    if old.metrics_listen != new.metrics_listen {
        keys.push("[metrics]");
    }
    keys
}

impl Running {
    /// Reload the config file (DESIGN §8 identity rules). An invalid config, or one that
    /// changes keys that cannot change live, is rejected, journaled as rejected, and nothing
    /// is applied. `uid` is the caller's over the control socket (`None`: SIGHUP).
    async fn reload(
        &mut self,
        drivers: &mut Vec<DriverHandle>,
        uid: Option<u32>,
    ) -> Result<String, (u8, String)> {
        let new = match crate::config::load(&self.path) {
            Ok(config) => config,
            Err(e) => {
                let code = match e {
                    crate::config::LoadError::Unreadable { .. } => exit::NOINPUT,
                    crate::config::LoadError::Invalid { .. } => exit::DATAERR,
                };
                for line in e.lines() {
                    tracing::error!(error = %line, "reload rejected");
                }
                self.journal_rejection(uid, e.lines()).await;
                return Err((
                    code,
                    format!(
                        "reload rejected, the running configuration is kept:\n{}",
                        e.lines().join("\n")
                    ),
                ));
            }
        };
        let fixed = restart_required(&self.config, &new);
        if !fixed.is_empty() {
            let reason = format!("{} changed; restart required", fixed.join(", "));
            tracing::error!(error = %reason, "reload rejected");
            self.journal_rejection(uid, vec![reason.clone()]).await;
            return Err((
                exit::DATAERR,
                format!("reload rejected: {reason} (the running configuration is kept)"),
            ));
        }
        let old_names: Vec<&str> = self
            .config
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let added: Vec<&crate::config::Service> = new
            .services
            .iter()
            .filter(|s| !old_names.contains(&s.name.as_str()))
            .collect();
        let removed: Vec<String> = self
            .config
            .services
            .iter()
            .filter(|s| !new.services.iter().any(|n| n.name == s.name))
            .map(|s| s.name.clone())
            .collect();
        let changed: Vec<&crate::config::Service> = new
            .services
            .iter()
            .filter(|s| {
                self.config
                    .services
                    .iter()
                    .any(|o| o.name == s.name && o != *s)
            })
            .collect();
        let record = wire::Reloaded {
            services: service_params(&new),
            config_hash: new.hash.clone(),
            added: added.iter().map(|s| s.name.clone()).collect(),
            removed: removed.clone(),
            changed: changed.iter().map(|s| s.name.clone()).collect(),
        };
        // A changed service's new damping goes into its driver's `Reconfigured` record; an
        // added one's is journaled here, with the reload that starts it.
        let mut events = vec![wire::Event::Reloaded(record)];
        events.extend(service_damping(&new).into_iter().filter(|e| {
            matches!(e, wire::Event::ServiceDamping(d) if added.iter().any(|a| a.name == d.service))
        }));
        let at = now_ms();
        // Prefix changes are decisions of the reload record, the first of the batch.
        let others = events.len().saturating_sub(1) as u64;
        let seq = match self.shared.journal.append_durable(at, events).await {
            Ok(seq) => seq.saturating_sub(others),
            Err(e) => {
                tracing::error!(error = %e, "cannot journal the reload; applying it anyway");
                0
            }
        };
        // New backends get a writer before any driver needs it.
        {
            let mut writers = self
                .shared
                .writers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for id in new.prefixes_by_backend().into_keys() {
                writers.entry(id.clone()).or_insert_with(|| {
                    routing::spawn_writer(
                        &new.routing(),
                        &id,
                        new.frrouting.reconcile_interval,
                        self.reports.clone(),
                    )
                });
            }
        }
        for name in &removed {
            if let Some(index) = drivers.iter().position(|d| &d.name == name) {
                let driver = drivers.remove(index);
                let (tx, rx) = oneshot::channel();
                if driver
                    .commands
                    .send(driver::Command::Remove(tx))
                    .await
                    .is_ok()
                {
                    let _ = rx.await;
                }
                self.driver_commands
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
            }
        }
        for service in &changed {
            if let Some(driver) = drivers.iter().find(|d| d.name == service.name) {
                let (tx, rx) = oneshot::channel();
                let command = driver::Command::Reconfigure {
                    service: Box::new((*service).clone()),
                    decision_seq: seq,
                    reply: tx,
                };
                if driver.commands.send(command).await.is_ok() {
                    let _ = rx.await;
                }
            }
        }
        for service in &added {
            self.shared
                .views
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    service.name.clone(),
                    ServiceView {
                        name: service.name.clone(),
                        suppressed: false,
                        state: wire::State::Starting,
                        since_ms: at,
                        cause: "added by a reload".into(),
                    },
                );
            let handle = driver::spawn(
                Start {
                    service: (*service).clone(),
                    initial: anycastd_fsm::State::Starting,
                    at_ms: at,
                    restored_damping: None,
                    since: (at, "added by a reload".into()),
                },
                self.shared.clone(),
            );
            self.driver_commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(handle.name.clone(), handle.commands.clone());
            drivers.push(handle);
        }
        let summary = format!(
            "reloaded: {} added, {} removed, {} changed, {} unchanged (config {})",
            added.len(),
            removed.len(),
            changed.len(),
            new.services.len() - added.len() - changed.len(),
            new.hash
        );
        tracing::info!(
            added = %added.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            removed = %removed.join(", "),
            changed = %changed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            "{summary}"
        );
        *self.shared_config.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(new.clone());
        self.config = new;
        Ok(summary)
    }

    async fn journal_rejection(&self, uid: Option<u32>, errors: Vec<String>) {
        let record = wire::Event::ReloadRejected(wire::ReloadRejected { uid, errors });
        if let Err(e) = self
            .shared
            .journal
            .append_durable(now_ms(), vec![record])
            .await
        {
            tracing::error!(error = %e, "cannot journal the rejected reload");
        }
    }
}

/// `stop --keep-announced`: journal the handover and exit without touching FRR; the next
/// start restores the services (DESIGN §5 rule 1).
async fn hand_over(reason: &str, drivers: Vec<DriverHandle>, journal: &JournalHandle) -> u8 {
    // The results since each service's last record are journaled first, so that replay
    // knows them (the next start restores the services where they were).
    for driver in &drivers {
        let (tx, rx) = oneshot::channel();
        if driver.commands.send(Command::FlushRuns(tx)).await.is_ok() {
            let _ = rx.await;
        }
        driver.task.abort();
    }
    let stopped = wire::DaemonStopped {
        reason: reason.to_owned(),
        outcome: wire::StopOutcome::HandedOver,
    };
    if let Err(e) = journal
        .append_durable(now_ms(), vec![wire::Event::DaemonStopped(stopped)])
        .await
    {
        tracing::error!(error = %e, "cannot journal the handover");
    }
    tracing::info!("Handed over: prefixes stay announced until the next start reconciles them.");
    exit::OK
}

async fn shutdown(
    config: &Config,
    reason: &str,
    drivers: Vec<DriverHandle>,
    writers: &HashMap<BackendId, WriterHandle>,
    journal: &JournalHandle,
    flush_reports: &mpsc::Sender<oneshot::Sender<()>>,
    signals: &mut Signals,
) -> u8 {
    let deadline = Instant::now() + config.daemon.shutdown_timeout;
    let names: Vec<String> = drivers.iter().map(|d| d.name.clone()).collect();
    let withdraw_all = async {
        // Every driver journals its Draining(Shutdown) and hands the withdrawal to the writers.
        let mut acks = Vec::new();
        for driver in &drivers {
            let (tx, rx) = oneshot::channel();
            if driver.commands.send(Command::Shutdown(tx)).await.is_ok() {
                acks.push(rx);
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
        for writer in writers.values() {
            writer.urgent();
        }
        // Wait until every writer verified every withdrawal.
        for writer in writers.values() {
            let target = writer.generation();
            let mut status = writer.status();
            let _ = status
                .wait_for(|s| s.generation >= target && s.pending.is_empty())
                .await;
        }
    };
    let finished = tokio::select! {
        _ = tokio::time::timeout_at(deadline, withdraw_all) => true,
        second = signals.next() => {
            tracing::error!("Received {second} again, exiting at once without verifying withdrawals.");
            false
        }
    };
    for driver in &drivers {
        driver.task.abort();
    }
    let mut left: Vec<wire::PrefixRef> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for (id, writer) in writers {
        let status = writer.status().borrow().clone();
        if status.generation < writer.generation() {
            // The writer never finished a pass over the shutdown decisions: nothing of this
            // backend's prefixes is verified.
            for (_, prefix) in config.prefixes_by_backend().get(id).into_iter().flatten() {
                left.push(prefix.journal_ref());
            }
            reasons.push(
                status
                    .read_error
                    .clone()
                    .unwrap_or_else(|| "withdrawal not verified in time".into()),
            );
            continue;
        }
        for ((vrf, prefix), _, error) in &status.pending {
            left.push(
                crate::routing::Route {
                    prefix: *prefix,
                    vrf: vrf.clone(),
                    backend: id.clone(),
                }
                .journal_ref(),
            );
            if let Some(error) = error {
                reasons.push(error.clone());
            }
        }
    }
    left.sort();
    left.dedup();
    reasons.sort();
    reasons.dedup();
    let outcome = if left.is_empty() {
        wire::StopOutcome::WithdrawnAll
    } else {
        wire::StopOutcome::Left(left.clone())
    };
    self::flush_reports(flush_reports, std::time::Duration::from_secs(2)).await;
    let stop_reason = if finished {
        reason.to_owned()
    } else {
        format!("{reason}, then a second signal")
    };
    if let Err(e) = journal
        .append_durable(
            now_ms(),
            vec![wire::Event::DaemonStopped(wire::DaemonStopped {
                reason: stop_reason,
                outcome,
            })],
        )
        .await
    {
        tracing::error!(error = %e, "cannot journal the stop");
    }
    for name in &names {
        let service_left: Vec<String> = config
            .services
            .iter()
            .filter(|s| &s.name == name)
            .flat_map(|s| s.prefixes.iter().map(prefix_ref))
            .filter(|p| !finished || left.contains(p))
            .map(|p| crate::text::prefix_text(&p))
            .collect();
        if service_left.is_empty() {
            tracing::info!(service = %name, "Service \"{name}\" terminated.");
        } else {
            tracing::warn!(
                service = %name,
                prefixes = %service_left.join(", "),
                "Service \"{name}\" stopped without a verified withdrawal; its prefixes may still be announced: {}.",
                service_left.join(", ")
            );
        }
    }
    if left.is_empty() && finished {
        return exit::OK;
    }
    let listed: Vec<String> = left.iter().map(crate::text::prefix_text).collect();
    tracing::error!(
        left = %listed.join(", "),
        reasons = %reasons.join("; "),
        "Could not verify the withdrawal of every prefix before exiting; still announced or unknown: {}. Please remediate manually.",
        listed.join(", ")
    );
    exit::SOFTWARE
}
