//! The journal reporter: every apply outcome of the writers, whatever their backend (FRR,
//! BIRD), becomes a record (and a log line when it failed or drifted).

use super::*;

/// Journal every apply outcome; log failures. A message on `flush` is answered once every
/// report received so far is journaled (so the stop record comes after them).
/// Have the reporter journal every outcome queued so far; waits at most `limit`.
pub(super) async fn flush_reports(
    reporter: &mpsc::Sender<oneshot::Sender<()>>,
    limit: std::time::Duration,
) {
    let (done_tx, done_rx) = oneshot::channel();
    if reporter.send(done_tx).await.is_ok() {
        let _ = tokio::time::timeout(limit, done_rx).await;
    }
}

pub(super) async fn journal_reports(
    mut reports: mpsc::UnboundedReceiver<Notice>,
    mut flush: mpsc::Receiver<oneshot::Sender<()>>,
    journal: JournalHandle,
) {
    loop {
        tokio::select! {
            biased;
            report = reports.recv() => match report {
                Some(report) => {
                    // Every report waiting goes into one durable append: an operator told
                    // "the daemon shows it" finds the outcome in the journal after a crash too.
                    let mut events: Vec<wire::Event> = journal_notice(report);
                    while let Ok(report) = reports.try_recv() {
                        events.extend(journal_notice(report));
                    }
                    journal.append_flushed(now_ms(), events);
                }
                None => return,
            },
            Some(done) = flush.recv() => {
                let mut events = Vec::new();
                while let Ok(report) = reports.try_recv() {
                    events.extend(journal_notice(report));
                }
                journal.append_flushed(now_ms(), events);
                let _ = done.send(());
            }
        }
    }
}

/// The records of a writer's notice (and its log line).
pub(super) fn journal_notice(notice: Notice) -> Vec<wire::Event> {
    match notice {
        Notice::Outcome(report) => journal_report(report).into_iter().collect(),
        Notice::Restarted(restart) => journal_restart(restart),
    }
}

/// A routing daemon restarted: one record per service with prefixes wanted announced there
/// (and per service that has none, nothing: its prefixes stay withdrawn).
fn journal_restart(restart: Restart) -> Vec<wire::Event> {
    let Restart {
        backend,
        daemon,
        announced,
    } = restart;
    crate::observe::metrics::count(
        "anycastd_routing_restarts_total",
        &[
            ("backend", backend.kind.name()),
            ("endpoint", &backend.instance),
        ],
        1.0,
    );
    tracing::warn!(
        backend = %backend,
        prefixes = announced.len(),
        "{daemon} restarted ({}); re-announcing {} prefix(es).",
        backend.kind.instance_text(&backend.instance),
        announced.len()
    );
    let total = announced.len() as u64;
    let mut by_service: BTreeMap<String, Vec<wire::PrefixRef>> = BTreeMap::new();
    for (service, (place, prefix)) in announced {
        by_service.entry(service).or_default().push(
            crate::routing::Route {
                prefix,
                place,
                backend: backend.clone(),
            }
            .journal_ref(),
        );
    }
    by_service
        .into_iter()
        .map(|(service, prefixes)| {
            wire::Event::RoutingRestarted(wire::RoutingRestarted {
                service,
                daemon: daemon.to_owned(),
                prefixes,
                total,
            })
        })
        .collect()
}

/// The record of a routing daemon's outcome (and its log line).
pub(super) fn journal_report(report: Report) -> Option<wire::Event> {
    {
        let Report {
            backend,
            key: (place, prefix),
            decision,
            outcome,
        } = report;
        // Where it is, as a log field named as its kind names a place (`vrf`, `protocol`).
        let place_name = place.name().unwrap_or("default").to_owned();
        let (vrf, protocol) = match backend.kind.place_noun() {
            "protocol" => (None, Some(tracing::field::display(&place_name))),
            _ => (Some(tracing::field::display(&place_name)), None),
        };
        let shown =
            backend
                .kind
                .place_text_at(&prefix.to_string(), place.name(), &backend.instance);
        if let Outcome::Failed(error) = &outcome {
            let verb = if decision.announce {
                "announce"
            } else {
                "withdraw"
            };
            let daemon = backend.kind.label();
            tracing::warn!(service = %decision.service, prefix = %prefix, vrf, protocol, error = %error,
                "Could not {verb} prefix {shown} in {daemon}; retrying.");
        }
        let daemon = backend.kind.label();
        let prefix_ref = crate::routing::Route {
            prefix,
            place: place.clone(),
            backend,
        }
        .journal_ref();
        if let Outcome::Drift { present } = outcome {
            crate::observe::metrics::count(
                "anycastd_drift_repairs_total",
                &[("service", &decision.service)],
                1.0,
            );
            let is = if present { "configured" } else { "missing" };
            let should = if decision.announce {
                "announced"
            } else {
                "withdrawn"
            };
            tracing::warn!(service = %decision.service, prefix = %prefix, vrf, protocol, present,
                "Drift: prefix {shown} is {is} in {daemon} although it should be {should}; repairing.");
            return Some(wire::Event::Drift(wire::Drift {
                service: decision.service.clone(),
                prefix: prefix_ref,
                present,
                wanted: decision.announce,
            }));
        }
        if let Outcome::AttributesDrift { installed } = &outcome {
            crate::observe::metrics::count(
                "anycastd_drift_repairs_total",
                &[("service", &decision.service)],
                1.0,
            );
            tracing::warn!(service = %decision.service, prefix = %prefix, vrf, protocol, installed = %installed,
                "Drift: prefix {shown} is announced with {installed} in {daemon} although it should be announced with {}; repairing.",
                decision.attributes);
            // The journal's drift record as it is: present and wanted both (never written
            // before attributes existed) stands for an announcement with other attributes.
            return Some(wire::Event::Drift(wire::Drift {
                service: decision.service.clone(),
                prefix: prefix_ref,
                present: true,
                wanted: true,
            }));
        }
        let outcome = match outcome {
            Outcome::Drift { .. } | Outcome::AttributesDrift { .. } => return None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::writer::Decision;
    use crate::routing::{BackendId, Place};

    #[test]
    fn an_announcement_found_with_other_attributes_is_journaled_as_drift_present_and_wanted() {
        let report = Report {
            backend: BackendId::frr("/usr/bin/vtysh"),
            key: (Place::default(), "203.0.113.53/32".parse().unwrap()),
            decision: Decision {
                service: "dns".into(),
                announce: true,
                attributes: crate::bgp::Attributes {
                    med: Some(1000),
                    ..Default::default()
                },
                decision_seq: 4,
            },
            outcome: Outcome::AttributesDrift {
                installed: Default::default(),
            },
        };
        match journal_report(report) {
            Some(wire::Event::Drift(d)) => assert!(d.present && d.wanted, "{d:?}"),
            other => panic!("{other:?}"),
        }
    }
}
