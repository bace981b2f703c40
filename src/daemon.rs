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
use crate::driver::{self, prefix_ref, Command, DriverHandle};
use crate::exit;
use crate::frr::vtysh::Vtysh;
use crate::frr::writer::{self, Outcome, Report, WriterHandle};
use crate::journal::{now_ms, JournalHandle};
use anycastd_journal::{wire, Committer, Journal, Options};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The kernel's boot id (changes on every boot), or empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The effective parameters of every service, as journaled at start.
pub fn service_params(config: &Config) -> Vec<wire::ServiceParams> {
    config
        .services
        .iter()
        .map(|s| wire::ServiceParams {
            name: s.name.clone(),
            rise: s.rise,
            fall: s.fall,
            checks: s
                .checks
                .iter()
                .map(|c| wire::CheckParams {
                    kind: "cabourotte".into(),
                    url: c.url.clone(),
                    name: c.name.clone(),
                    interval_ms: c.interval.as_millis() as u64,
                    timeout_ms: c.timeout.as_millis() as u64,
                    pending_timeout_ms: c.pending_timeout.as_millis() as u64,
                    max_age_ms: c.max_age.map(|d| d.as_millis() as u64),
                })
                .collect(),
            prefixes: s.prefixes.iter().map(prefix_ref).collect(),
        })
        .collect()
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
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("anycastd: cannot install signal handlers: {e}");
            return exit::SOFTWARE;
        }
    };
    let journal = match Journal::open(&config.journal.path, &Options::default()) {
        Ok(journal) => JournalHandle::new(Committer::start(journal)),
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
            JournalHandle::unavailable()
        }
    };
    let started = wire::DaemonStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        config_hash: config.hash.clone(),
        boot_id: boot_id(),
        services: service_params(&config),
    };
    if let Err(e) = journal
        .append_durable(now_ms(), vec![wire::Event::DaemonStarted(started)])
        .await
    {
        tracing::error!(error = %e, "cannot journal the start");
    }
    tracing::info!(
        config = %config_path.display(),
        services = config.services.len(),
        journal = %config.journal.path.display(),
        "anycastd {} started.",
        env!("CARGO_PKG_VERSION")
    );

    let client = match crate::checks::http_client() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("anycastd: cannot create the HTTP client: {e}");
            return exit::SOFTWARE;
        }
    };
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let reporter = tokio::spawn(journal_reports(reports_rx, journal.clone()));
    let writers: HashMap<PathBuf, WriterHandle> = config
        .prefixes_by_vtysh()
        .into_keys()
        .map(|path| {
            let vtysh = Vtysh {
                path: path.clone(),
                args: config.frrouting.vtysh_args.clone(),
                timeout: config.frrouting.vtysh_timeout,
            };
            (path, writer::spawn(vtysh, reports_tx.clone()))
        })
        .collect();
    drop(reports_tx);
    let drivers: Vec<DriverHandle> = config
        .services
        .iter()
        .map(|service| {
            driver::spawn(
                service.clone(),
                writers.clone(),
                journal.clone(),
                client.clone(),
            )
        })
        .collect();

    let reason = signals.next().await;
    tracing::info!("Received {reason}, terminating.");
    let code = shutdown(&config, reason, drivers, &writers, &journal, &mut signals).await;
    drop(writers);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), reporter).await;
    journal.close();
    code
}

/// Journal every apply outcome; log failures.
async fn journal_reports(mut reports: mpsc::UnboundedReceiver<Report>, journal: JournalHandle) {
    while let Some(report) = reports.recv().await {
        let Report {
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
        let outcome = match outcome {
            Outcome::Applied => wire::Outcome::Applied,
            Outcome::AlreadySo => wire::Outcome::AlreadySo,
            Outcome::Failed(e) => wire::Outcome::Failed(e),
            Outcome::Superseded => wire::Outcome::Superseded,
        };
        journal.append(
            now_ms(),
            vec![wire::Event::Apply(wire::Apply {
                service: decision.service.clone(),
                prefix: wire::PrefixRef {
                    vtysh: String::new(),
                    vrf,
                    prefix: prefix.to_string(),
                },
                change: if decision.announce {
                    wire::Change::Announce
                } else {
                    wire::Change::Withdraw
                },
                outcome,
                decision_seq: decision.decision_seq,
            })],
        );
    }
}

async fn shutdown(
    config: &Config,
    reason: &str,
    drivers: Vec<DriverHandle>,
    writers: &HashMap<PathBuf, WriterHandle>,
    journal: &JournalHandle,
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
    for (path, writer) in writers {
        let status = writer.status().borrow().clone();
        if status.generation < writer.generation() {
            // The writer never finished a pass over the shutdown decisions: nothing of this
            // vtysh's prefixes is verified.
            for (_, prefix) in config.prefixes_by_vtysh().get(path).into_iter().flatten() {
                left.push(prefix_ref(prefix));
            }
            reasons.push(
                status
                    .frr_error
                    .clone()
                    .unwrap_or_else(|| "withdrawal not verified in time".into()),
            );
            continue;
        }
        for ((vrf, prefix), _, error) in &status.pending {
            left.push(wire::PrefixRef {
                vtysh: path.display().to_string(),
                vrf: vrf.clone(),
                prefix: prefix.to_string(),
            });
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
        tracing::info!(service = %name, "Service \"{name}\" terminated.");
    }
    if left.is_empty() && finished {
        return exit::OK;
    }
    let listed: Vec<String> = left
        .iter()
        .map(|p| match &p.vrf {
            Some(vrf) => format!("{} (vrf {vrf})", p.prefix),
            None => p.prefix.clone(),
        })
        .collect();
    tracing::error!(
        left = ?listed,
        reasons = ?reasons,
        "Could not verify the withdrawal of every prefix before exiting; still announced or unknown: {}. Please remediate manually.",
        listed.join(", ")
    );
    exit::SOFTWARE
}
