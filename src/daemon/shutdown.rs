//! Stopping: withdraw everything and verify it within `shutdown_timeout` (or hand over with
//! `stop --keep-announced`), and journal the stop either way.

use super::*;

/// `stop --keep-announced`: journal the handover and exit without touching the routing
/// daemons; the next start restores the services (docs/ARCHITECTURE.md, "Start-up
/// reconciliation", rule 1).
pub(super) async fn hand_over(
    reason: &str,
    drivers: Vec<DriverHandle>,
    journal: &JournalHandle,
) -> u8 {
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

/// The graces of a shutdown: every driver journals its Draining(Shutdown); one announced
/// with a grace (`stop --grace`, or its `drain_grace`) is announced with GRACEFUL_SHUTDOWN
/// until the grace ends, then hands its withdrawal to the writers. A second signal ends every
/// grace at once (a third exits without verifying). Returns whether a signal cut them short.
async fn graces(
    config: &Config,
    drivers: &[DriverHandle],
    signals: &mut Signals,
    grace: Option<std::time::Duration>,
    requests: &mut mpsc::Receiver<control::StopRequest>,
    later: &mut Vec<control::StopRequest>,
) -> bool {
    let mut acks = Vec::new();
    for driver in drivers {
        let (tx, rx) = oneshot::channel();
        if driver
            .commands
            .send(Command::Shutdown { grace, done: tx })
            .await
            .is_ok()
        {
            acks.push(rx);
        }
    }
    // Bounded like the withdrawals: the longest grace, then `shutdown_timeout`.
    let longest = grace.unwrap_or_else(|| {
        config
            .services
            .iter()
            .map(|s| s.drain_grace)
            .max()
            .unwrap_or_default()
    });
    let graces = async {
        let _ = tokio::time::timeout(longest + config.daemon.shutdown_timeout, async {
            for ack in acks {
                let _ = ack.await;
            }
        })
        .await;
    };
    tokio::pin!(graces);
    loop {
        tokio::select! {
            () = &mut graces => return false,
            second = signals.next() => {
                tracing::warn!("Received {second} again, ending every drain grace at once.");
                break;
            }
            Some(request) = requests.recv() => {
                // `anycastd stop` while the stop waits out its graces: `--grace 0` ends them
                // at once; either way it is answered with the stop's outcome.
                let now = request.grace == Some(std::time::Duration::ZERO);
                later.push(request);
                if now {
                    tracing::warn!("anycastd stop --grace 0 while stopping: ending every drain grace at once.");
                    break;
                }
            }
        }
    }
    for driver in drivers {
        let (tx, rx) = oneshot::channel();
        if driver.commands.send(Command::EndGrace(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
    true
}

/// Why the daemon stops, and the grace asked (`stop --grace`; `None`: each service's own).
pub(super) struct Stop<'a> {
    /// The signal or request, in words.
    pub reason: &'a str,
    /// The grace instead of each service's `drain_grace`.
    pub grace: Option<std::time::Duration>,
    /// Where further `anycastd stop` requests arrive while the graces run.
    pub requests: &'a mut mpsc::Receiver<control::StopRequest>,
    /// Those requests, answered with the stop's outcome.
    pub later: Vec<control::StopRequest>,
}

/// SIGTERM, SIGINT or `anycastd stop`: every service drains (journaled), every writer
/// withdraws and verifies within `shutdown_timeout` (a second signal cuts it short), then the
/// stop is journaled with what is left and each service's end is logged. Exit 0 only when
/// every withdrawal is verified, else 70, with the prefixes left and why (for `anycastd
/// stop` to print). Long because it is those steps in order, each short; the journal record,
/// the log lines and the answer need all of their results.
pub(super) async fn shutdown(
    config: &Config,
    stop: &mut Stop<'_>,
    drivers: Vec<DriverHandle>,
    writers: &HashMap<BackendId, WriterHandle>,
    journal: &JournalHandle,
    flush_reports: &mpsc::Sender<oneshot::Sender<()>>,
    signals: &mut Signals,
) -> (u8, Vec<control::LeftPrefix>) {
    let (reason, grace) = (stop.reason, stop.grace);
    let cut_short = graces(
        config,
        &drivers,
        signals,
        grace,
        stop.requests,
        &mut stop.later,
    )
    .await;
    let deadline = Instant::now() + config.daemon.shutdown_timeout;
    let names: Vec<String> = drivers.iter().map(|d| d.name.clone()).collect();
    // The generation each writer must reach to have verified the shutdown's withdrawals, known
    // once every driver handed its withdrawal over (a second signal may come before).
    let targets: std::sync::Mutex<Option<HashMap<BackendId, u64>>> = std::sync::Mutex::new(None);
    let withdraw_all = async {
        for writer in writers.values() {
            writer.urgent();
        }
        *targets.lock().unwrap_or_else(|p| p.into_inner()) = Some(
            writers
                .iter()
                .map(|(id, w)| (id.clone(), w.generation()))
                .collect(),
        );
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
    let targets = targets.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut left_why = left_prefixes(config, writers, targets.as_ref());
    left_why.sort();
    left_why.dedup_by(|a, b| a.0 == b.0);
    let left: Vec<wire::PrefixRef> = left_why.iter().map(|(p, _)| p.clone()).collect();
    let mut reasons: Vec<String> = left_why.iter().map(|(_, why)| why.clone()).collect();
    reasons.sort();
    reasons.dedup();
    let outcome = if left.is_empty() {
        wire::StopOutcome::WithdrawnAll
    } else {
        wire::StopOutcome::Left(left.clone())
    };
    self::flush_reports(flush_reports, std::time::Duration::from_secs(2)).await;
    let stop_reason = match (finished, cut_short) {
        (true, false) => reason.to_owned(),
        (true, true) => format!("{reason}, then a second signal ending the grace"),
        (false, false) => format!("{reason}, then a second signal"),
        (false, true) => format!("{reason}, then a second signal ending the grace and a third"),
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
            .map(|p| crate::audit::text::prefix_text(&p))
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
        return (exit::OK, Vec::new());
    }
    let listed: Vec<String> = left.iter().map(crate::audit::text::prefix_text).collect();
    // What the routing daemons of the prefixes left say the operator can do, once each.
    let mut hints = String::new();
    for kind in crate::routing::KINDS {
        let hint = kind.left_announced_hint();
        if let Some(hint) = hint.filter(|_| left.iter().any(|p| p.backend == kind.name())) {
            hints.push(' ');
            hints.push_str(hint);
        }
    }
    tracing::error!(
        left = %listed.join(", "),
        reasons = %reasons.join("; "),
        "Could not verify the withdrawal of every prefix before exiting; still announced or unknown: {}. Please remediate manually.{hints}",
        listed.join(", ")
    );
    let left = left_why
        .into_iter()
        .map(|(prefix, error)| control::LeftPrefix { prefix, error })
        .collect();
    (exit::SOFTWARE, left)
}

/// Each prefix left unverified with why: its writer's last error for it, else what is known.
/// `targets`: the generation each writer must reach (`None`: the withdrawals were never all
/// handed over).
fn left_prefixes(
    config: &Config,
    writers: &HashMap<BackendId, WriterHandle>,
    targets: Option<&HashMap<BackendId, u64>>,
) -> Vec<(wire::PrefixRef, String)> {
    let mut left_why: Vec<(wire::PrefixRef, String)> = Vec::new();
    for (id, writer) in writers {
        let status = writer.status().borrow().clone();
        // Cut short before the withdrawals were handed over, or before this writer's pass
        // over them: nothing of this backend is verified.
        let target = targets.and_then(|t| t.get(id).copied());
        if target.is_none_or(|target| status.generation < target) {
            // The writer never finished a pass over the shutdown decisions: nothing of this
            // backend's prefixes is verified.
            let why = status.read_error.clone().unwrap_or_else(|| {
                if target.is_none() {
                    "a second signal came before the withdrawal was handed to the backend".into()
                } else {
                    NOT_IN_TIME.into()
                }
            });
            for (_, prefix) in config.prefixes_by_backend().get(id).into_iter().flatten() {
                left_why.push((prefix.journal_ref(), why.clone()));
            }
            continue;
        }
        for ((place, prefix), _, error) in &status.pending {
            let prefix = crate::routing::Route {
                prefix: *prefix,
                place: place.clone(),
                backend: id.clone(),
            }
            .journal_ref();
            left_why.push((prefix, error.clone().unwrap_or_else(|| NOT_IN_TIME.into())));
        }
    }
    left_why
}

/// Why a prefix left at a stop was not verified when the writer gave no error for it.
const NOT_IN_TIME: &str = "withdrawal not verified in time";
