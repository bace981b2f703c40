//! Start-up: open the journal (moving an unreadable one aside), read what it says, and
//! reconcile with the backends before the first check (docs/ARCHITECTURE.md, "Start-up
//! reconciliation").

use super::*;

/// What the journal said before this start.
#[derive(Debug, Default)]
pub struct Prior {
    /// Last state of each service.
    pub last: BTreeMap<String, LastState>,
    /// Boot id of the previous start.
    pub boot_id: Option<String>,
    /// Last flap-damping state of each service.
    pub damping: BTreeMap<String, wire::DampingRecord>,
    /// The end (ms since the epoch) of the grace of each service drained in one when the
    /// journal ends (format 6).
    pub graces: BTreeMap<String, i64>,
    /// The services left unhealthy with their withdrawal held by the fleet guard (still
    /// announced) when the journal ends.
    pub held: BTreeSet<String>,
    /// Since when, and why in words, each service healthy or unhealthy when the journal ends
    /// has been in that state: its last transition into it that was not a restoration at a
    /// start. A restart that restores the same state publishes these to the fleet guard, not
    /// the restart's own time and words (the fleet was told them before the restart).
    pub unchanged_since: BTreeMap<String, (i64, String)>,
}

pub(super) fn read_prior(journal: &Journal) -> Result<Prior, anycastd_journal::Error> {
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
    let graces = graces(journal, &last)?;
    let held = held(journal, &last)?;
    let unchanged_since = unchanged_since(journal, &last)?;
    Ok(Prior {
        last,
        boot_id,
        damping,
        graces,
        held,
        unchanged_since,
    })
}

/// [`Prior::unchanged_since`]: for each service whose last state is healthy or unhealthy, the
/// newest transition that is not a restoration to the same state (`Restored`, from = to),
/// if it led to that state.
fn unchanged_since(
    journal: &Journal,
    last: &BTreeMap<String, LastState>,
) -> Result<BTreeMap<String, (i64, String)>, anycastd_journal::Error> {
    let mut since = BTreeMap::new();
    for (service, state) in last {
        if !matches!(state.state, wire::State::Healthy | wire::State::Unhealthy) {
            continue;
        }
        for entry in journal.service_entries_rev(service) {
            let anycastd_journal::Entry::Record(record) = entry? else {
                continue;
            };
            let wire::Event::Transition(t) = record.event else {
                continue;
            };
            if t.cause == wire::Cause::Restored && t.from == t.to {
                continue;
            }
            if t.to == state.state {
                since.insert(
                    service.clone(),
                    (record.at_ms, crate::audit::text::cause_text(&t.cause)),
                );
            }
            break;
        }
    }
    Ok(since)
}

/// The grace of each service whose last state is an operator drain and whose last transition
/// left it in a grace: its level record (written right after the transition) has the end.
fn graces(
    journal: &Journal,
    last: &BTreeMap<String, LastState>,
) -> Result<BTreeMap<String, i64>, anycastd_journal::Error> {
    let mut graces = BTreeMap::new();
    for (service, state) in last {
        if !matches!(
            state.state,
            wire::State::Draining(wire::DrainCause::Operator { .. })
        ) {
            continue;
        }
        for entry in journal.service_entries_rev(service) {
            let anycastd_journal::Entry::Record(record) = entry? else {
                continue;
            };
            match record.event {
                wire::Event::Level(level) => {
                    if let Some(until) = level.grace_until_ms {
                        graces.insert(service.clone(), until);
                    }
                    break;
                }
                wire::Event::Transition(_) => break,
                _ => {}
            }
        }
    }
    Ok(graces)
}

/// The services whose last state is unhealthy and whose withdrawal the fleet guard held: the
/// newest fleet guard answer since their last transition kept them announced (held, or blind
/// under `on_unreachable = "hold"`). A restoration at start (unhealthy to unhealthy, after an
/// earlier restart) is looked through: the answers before it still tell.
fn held(
    journal: &Journal,
    last: &BTreeMap<String, LastState>,
) -> Result<BTreeSet<String>, anycastd_journal::Error> {
    let mut held = BTreeSet::new();
    for (service, state) in last {
        if state.state != wire::State::Unhealthy {
            continue;
        }
        for entry in journal.service_entries_rev(service) {
            let anycastd_journal::Entry::Record(record) = entry? else {
                continue;
            };
            match record.event {
                wire::Event::FleetGuard(g) => {
                    if matches!(
                        g.answer,
                        wire::FleetAnswer::Held(_) | wire::FleetAnswer::Blind { held: true, .. }
                    ) {
                        held.insert(service.clone());
                    }
                    break;
                }
                wire::Event::Transition(t)
                    if t.cause == wire::Cause::Restored
                        && t.from == wire::State::Unhealthy
                        && t.to == wire::State::Unhealthy => {}
                wire::Event::Transition(_) => break,
                _ => {}
            }
        }
    }
    Ok(held)
}

/// How long the daemon waits for a journal held by someone else (a client reading it while
/// no daemon ran holds it for milliseconds; another daemon holds it for good).
pub(super) const JOURNAL_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Open the journal, waiting up to [`JOURNAL_LOCK_WAIT`] while its lock is held.
pub(super) fn open_waiting(
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
/// announcements must not depend on the audit store (docs/ARCHITECTURE.md, "The journal").
pub(super) fn open_or_reset(
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
pub(super) fn start_cause(plan: &Reconciliation, prior: &Prior, service: &str) -> (i64, String) {
    if let Some(cause) = plan.plan.causes.get(service) {
        return (plan.at_ms, crate::audit::text::cause_text(cause));
    }
    match (plan.plan.states.get(service), prior.last.get(service)) {
        (Some(anycastd_fsm::State::Draining(_)), Some(last)) => {
            (last.at_ms, "drained (kept across the restart)".to_owned())
        }
        _ => (plan.at_ms, "started".to_owned()),
    }
}

/// The journal record that decided the state a service starts in: the reconciliation's when
/// it set one, else the last transition before the restart (a kept drain's); 0: none (a
/// service new to the journal starts with nothing decided).
pub(super) fn decided_seq(plan: &Reconciliation, prior: &Prior, service: &str) -> u64 {
    if plan.plan.causes.contains_key(service) {
        return plan.seq;
    }
    prior.last.get(service).map_or(0, |last| last.seq)
}

/// The reconciliation plan, and the sequence number and time of its journal record.
pub(super) struct Reconciliation {
    pub(super) plan: Plan,
    pub(super) seq: u64,
    /// The services restored unhealthy with their withdrawal held by the fleet guard: still
    /// announced, their driver asks the guard again.
    pub(super) held: BTreeSet<String>,
    /// When the services' machines start (replay starts them at this record's time too).
    pub(super) at_ms: i64,
}

impl Reconciliation {
    /// Give the writers the plan's withdrawals and the restored services' announcements.
    pub(super) fn hand_to(&self, config: &Config, writers: &HashMap<BackendId, WriterHandle>) {
        let mut by_backend: BTreeMap<&BackendId, Vec<_>> = BTreeMap::new();
        for (route, service) in &self.plan.withdraw {
            by_backend.entry(&route.backend).or_default().push((
                route.key(),
                Decision {
                    attributes: Default::default(),
                    service: service.clone(),
                    announce: false,
                    decision_seq: self.seq,
                },
            ));
        }
        for service in &config.services {
            // Restored healthy: plain; restored unhealthy (under deprefer): de-preferred.
            let level = match self.plan.states.get(&service.name) {
                Some(anycastd_fsm::State::Healthy) => anycastd_fsm::Level::Normal,
                Some(anycastd_fsm::State::Draining(_))
                    if self.plan.graces.contains_key(&service.name) =>
                {
                    anycastd_fsm::Level::GracefulShutdown
                }
                Some(anycastd_fsm::State::Unhealthy)
                    if service.on_unhealthy == anycastd_fsm::OnUnhealthy::Deprefer =>
                {
                    anycastd_fsm::Level::Depreferred
                }
                // Its withdrawal held by the fleet guard: announced as it was.
                Some(anycastd_fsm::State::Unhealthy) if self.held.contains(&service.name) => {
                    anycastd_fsm::Level::Normal
                }
                _ => continue,
            };
            let attributes = crate::service::Graded::of(service).attributes(level);
            {
                for p in &service.prefixes {
                    by_backend.entry(&p.backend).or_default().push((
                        p.key(),
                        Decision {
                            attributes: attributes.clone(),
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

pub(super) async fn reconcile_at_start(
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
            tracing::error!(backend = %id, error = %e, "cannot read {} at start-up; its prefixes start afresh", crate::audit::text::backend_text(&id.to_string()));
        }
        view.insert(id, installed);
    }
    let services: Vec<reconcile::ServiceRoutes<'_>> = config
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.prefixes.as_slice()))
        .collect();
    let deprefer: Vec<&str> = config
        .services
        .iter()
        .filter(|s| s.on_unhealthy == anycastd_fsm::OnUnhealthy::Deprefer)
        .map(|s| s.name.as_str())
        .collect();
    // Graces still running (a kill during an operator drain's grace): kept to their end.
    let graces: BTreeMap<&str, i64> = prior
        .graces
        .iter()
        .filter(|(_, until)| **until > now_ms())
        .map(|(name, until)| (name.as_str(), *until))
        .collect();
    // Withdrawals the fleet guard held (still announced): kept, and asked again by the
    // driver, if the service is still guarded.
    let held: Vec<&str> = config
        .services
        .iter()
        .filter(|s| config.fleet.is_some() && s.fleet.is_some() && prior.held.contains(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    let plan = reconcile::plan(
        &services,
        &prior.last,
        &reconcile::Kept {
            deprefer: &deprefer,
            graces: &graces,
            held: &held,
        },
        rebooted,
        &view,
    );
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
            change: if to.announces() || *cause == wire::Cause::Restored {
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
        tracing::warn!("The host rebooted since the last start: nothing is restored, every configured prefix found in a routing daemon is withdrawn.");
    }
    for item in &plan.record.items {
        let daemon = crate::audit::text::backend_label(&item.prefix);
        let (decision, what) = match item.decision {
            ReconcileDecision::Kept if held.contains(&item.service.as_str()) => (
                "kept",
                "is kept announced (restored after a restart: the fleet guard held its withdrawal; it is asked again)".to_owned(),
            ),
            ReconcileDecision::Kept => (
                "kept",
                "is kept announced (restored after a restart)".to_owned(),
            ),
            ReconcileDecision::Adopted => (
                "adopted",
                format!("is adopted (configured and already in {daemon})"),
            ),
            ReconcileDecision::Missing => (
                "missing",
                format!("is missing from {daemon} although announced before the restart"),
            ),
            ReconcileDecision::Orphan => (
                "orphan",
                "is to be withdrawn: no longer configured (orphan)".to_owned(),
            ),
            ReconcileDecision::Withdrawn => (
                "withdrawn",
                format!("is to be withdrawn: in {daemon}, but not announced at the last stop"),
            ),
            ReconcileDecision::Reboot => {
                ("reboot", "is to be withdrawn: the host rebooted".to_owned())
            }
        };
        tracing::info!(
            service = %item.service,
            prefix = %item.prefix.prefix,
            vrf = item.prefix.vrf.as_deref().unwrap_or("default"),
            decision,
            "Prefix {} of service \"{}\" {what}.",
            crate::audit::text::prefix_text(&item.prefix),
            item.service
        );
    }
    let held = held
        .iter()
        .filter(|name| plan.states.get(**name) == Some(&anycastd_fsm::State::Unhealthy))
        .map(|name| (*name).to_owned())
        .collect();
    Reconciliation {
        plan,
        seq,
        held,
        at_ms: at,
    }
}

/// What opening the journal gives the daemon: the handle, what it said before this start,
/// a reader for the control socket, and the reset record if it had to be moved aside.
pub(super) type Opened = (
    JournalHandle,
    Prior,
    Option<anycastd_journal::Reader>,
    Option<wire::JournalReset>,
);

/// Open the journal and start its committer (every record also goes to `tap`, for
/// `history --follow`). A journal held by another daemon is exit 69; one that cannot be
/// opened at all leaves the daemon running without an audit trail (docs/ARCHITECTURE.md,
/// "The journal").
pub(super) fn open_journal(
    config: &Config,
    tap: &broadcast::Sender<Record>,
) -> Result<Opened, super::StartError> {
    let mut reset: Option<wire::JournalReset> = None;
    match open_or_reset(&config.journal, &mut reset) {
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
            Ok((JournalHandle::new(committer), prior, Some(reader), reset))
        }
        Err(anycastd_journal::Error::Locked { path, pid }) => {
            Err(super::StartError::JournalLocked { path, pid })
        }
        Err(e) => {
            tracing::error!(
                journal = %config.journal.path.display(),
                error = %e,
                "journal unavailable: running without an audit trail; health gating goes on"
            );
            Ok((JournalHandle::unavailable(), Prior::default(), None, reset))
        }
    }
}

/// Journal the start (after a reset record, if any) with every service's parameters and
/// damping; returns whether the host rebooted since the previous start.
pub(super) async fn journal_start(
    config: &Config,
    prior: &Prior,
    reset: Option<wire::JournalReset>,
    journal: &JournalHandle,
) -> bool {
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
        services: service_params(config),
    };
    let mut first_records = Vec::new();
    if let Some(reset) = reset {
        first_records.push(wire::Event::JournalReset(reset));
    }
    first_records.push(wire::Event::DaemonStarted(started));
    // How this run forms verdicts, so that replay re-runs it by the same rule (format 5).
    // After the start: retention, oldest first, never keeps it without its start.
    first_records.push(wire::Event::VerdictRule(crate::service::VERDICT_RULE));
    first_records.extend(service_damping(config));
    if let Err(e) = journal.append_durable(now_ms(), first_records).await {
        tracing::error!(error = %e, "cannot journal the start");
    }
    rebooted
}

/// One writer per backend: the configured ones and those the plan withdraws from.
pub(super) fn spawn_writers(
    config: &Config,
    plan: &Reconciliation,
    reports: &mpsc::UnboundedSender<Notice>,
) -> HashMap<BackendId, WriterHandle> {
    let mut backends: BTreeSet<BackendId> = config.prefixes_by_backend().into_keys().collect();
    backends.extend(
        plan.plan
            .withdraw
            .iter()
            .map(|(route, _)| route.backend.clone()),
    );
    backends
        .into_iter()
        .map(|id| {
            let writer = routing::spawn_writer(&config.routing(), &id, reports.clone());
            (id, writer)
        })
        .collect()
}

/// Each service's state as the control socket shows it before its driver runs.
pub(super) fn initial_views(
    config: &Config,
    plan: &Reconciliation,
    prior: &Prior,
) -> BTreeMap<String, ServiceView> {
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
            let (since_ms, cause) = start_cause(plan, prior, &s.name);
            let view = ServiceView {
                suppressed: false,
                name: s.name.clone(),
                state: (&state).into(),
                since_ms,
                cause,
            };
            (s.name.clone(), view)
        })
        .collect()
}

/// One driver per configured service, starting in the state the reconciliation decided.
/// What a service restored in the state it had before the restart publishes to the fleet
/// guard as its since and cause: those of the state's start before the restart
/// ([`Prior::unchanged_since`]); `None` when the restart changed its state.
fn fleet_since(
    plan: &Reconciliation,
    prior: &Prior,
    service: &str,
    initial: &anycastd_fsm::State,
) -> Option<(i64, String)> {
    let restored = plan.plan.causes.get(service) == Some(&wire::Cause::Restored);
    let unchanged = prior
        .last
        .get(service)
        .is_some_and(|last| last.state == wire::State::from(initial));
    if restored && unchanged {
        prior.unchanged_since.get(service).cloned()
    } else {
        None
    }
}

pub(super) fn spawn_drivers(
    config: &Config,
    plan: &Reconciliation,
    prior: &Prior,
    shared: &Shared,
) -> Vec<DriverHandle> {
    config
        .services
        .iter()
        .map(|service| {
            let initial = plan
                .plan
                .states
                .get(&service.name)
                .cloned()
                .unwrap_or(anycastd_fsm::State::Starting);
            let fleet_since = fleet_since(plan, prior, &service.name, &initial);
            driver::spawn(
                Start {
                    service: service.clone(),
                    initial,
                    at_ms: plan.at_ms,
                    restored_damping: prior.damping.get(&service.name).map(|d| d.state()),
                    since: start_cause(plan, prior, &service.name),
                    decided_seq: decided_seq(plan, prior, &service.name),
                    grace_until_ms: plan.plan.graces.get(&service.name).copied(),
                    fleet_since,
                },
                shared.clone(),
            )
        })
        .collect()
}
