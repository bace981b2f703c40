//! `[hooks] on_transition`: programs run on every state transition (keepalived's notify
//! scripts, ExaBGP's `--execute`).
//!
//! They never delay a decision or a routing change: the hook runner reads the transitions from
//! the journal's tap (each record as it is committed, so after the decision is durable) and
//! hands each to a queue per (hook, service). One worker per queue runs the program for one
//! transition at a time, in order: never two runs of one hook for one service at once. A
//! queue holds at most [`QUEUE`] transitions; one arriving at a full queue is not run, and
//! that is journaled. A run is an exec check's run (no shell, a minimal environment, its own
//! process group killed past its timeout, always reaped: [`crate::checks::exec`]), with the
//! transition in its environment:
//!
//! `ANYCASTD_SERVICE`, `ANYCASTD_FROM`, `ANYCASTD_TO` (starting, healthy, unhealthy,
//! draining), `ANYCASTD_CAUSE` (as history words it), `ANYCASTD_PREFIXES` (the service's
//! prefixes announced or withdrawn by it, space-separated; empty when none moved),
//! `ANYCASTD_ANNOUNCE` (`1` announce, `0` withdraw, empty: no change), `ANYCASTD_SEQ` (the
//! transition's journal sequence number) and `ANYCASTD_TIME` (RFC 3339); the level it left
//! the prefixes at: `ANYCASTD_LEVEL` (`normal`, `de-preferred`, `graceful-shutdown`,
//! `withdrawn`), `ANYCASTD_AS_PATH_PREPEND` (0 none), `ANYCASTD_MED` (empty: none),
//! `ANYCASTD_COMMUNITIES` and `ANYCASTD_LARGE_COMMUNITIES` (space-separated) and
//! `ANYCASTD_GRACE_END` (RFC 3339, empty when no drain grace runs). The level comes from the
//! level record the service core journals right after such a transition (format 6); without
//! one the state alone says it (announced: normal, else withdrawn).
//!
//! A transition that changes nothing (a restoration at a start) runs no hook; a drain's
//! grace ending (draining to draining, withdrawn) does. So does a level a reload changed (a
//! level record after no transition: `on_unhealthy` or the `deprefer` attributes of an
//! unhealthy or draining service), with `ANYCASTD_FROM` = `ANYCASTD_TO` (the state, which
//! did not change), `ANYCASTD_CAUSE` `level changed by a reload: ...` and `ANYCASTD_SEQ`
//! the level record's.
//!
//! Each run's outcome is journaled ([`wire::HookRan`]). A run still going when the daemon
//! exits is killed with its process group.

use crate::checks::exec::ExecCheck;
use crate::checks::exec::ExecProbe;
use crate::checks::{Observation, Probe};
use crate::config::Hook;
use crate::journal_handle::JournalHandle;
use anycastd_journal::wire::{self, Event};
use anycastd_journal::Record;
use std::collections::HashMap;
use tokio::sync::{broadcast, mpsc};

/// Transitions waiting per (hook, service), at most.
pub const QUEUE: usize = 64;

/// One transition (or level change by a reload) for a hook.
#[derive(Debug, Clone)]
struct Job {
    seq: u64,
    at_ms: i64,
    /// The states before and after, in the hooks' words (`draining`).
    from: &'static str,
    to: &'static str,
    /// Why, as history words it.
    cause: String,
    /// What it asks of the routing daemons, and of which prefixes.
    change: wire::Change,
    prefixes: Vec<wire::PrefixRef>,
    /// The level record journaled with it (or the level change itself), if any.
    level: Option<wire::LevelRecord>,
}

/// A state in the hooks' words.
fn state_word(s: &wire::State) -> &'static str {
    match s {
        wire::State::Starting => "starting",
        wire::State::Healthy => "healthy",
        wire::State::Unhealthy => "unhealthy",
        wire::State::Draining(_) => "draining",
    }
}

impl Job {
    fn of_transition(
        record: &Record,
        transition: &wire::Transition,
        level: Option<wire::LevelRecord>,
    ) -> Job {
        Job {
            seq: record.seq,
            at_ms: record.at_ms,
            from: state_word(&transition.from),
            to: state_word(&transition.to),
            cause: crate::audit::text::transition_cause_text(transition),
            change: transition.change,
            prefixes: transition.prefixes.clone(),
            level,
        }
    }

    /// A level a reload changed (a level record that follows no transition), in `state`
    /// (the service's last known one; else the one the level implies: only an unhealthy
    /// service changes between withdrawn and de-preferred, only a draining one has a grace).
    fn of_level(
        record: &Record,
        level: &wire::LevelRecord,
        state: Option<&wire::State>,
        prefixes: Vec<wire::PrefixRef>,
    ) -> Job {
        let word = state.map(state_word).unwrap_or(match level.level {
            Some(wire::Level::Normal) => "healthy",
            Some(wire::Level::GracefulShutdown) => "draining",
            Some(wire::Level::Depreferred) | None => "unhealthy",
        });
        Job {
            seq: record.seq,
            at_ms: record.at_ms,
            from: word,
            to: word,
            cause: crate::audit::text::reload_level_text(level),
            change: if level.level.is_some() {
                wire::Change::Announce
            } else {
                wire::Change::Withdraw
            },
            prefixes,
            level: Some(level.clone()),
        }
    }
}

/// How long the runner waits for the record after a transition (its level record is
/// committed in the same append, so it is handed over at once when there is one).
const LEVEL_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Start the runner: from now on every transition committed to the journal runs every hook.
pub fn spawn(
    hooks: Vec<Hook>,
    mut tap: broadcast::Receiver<Record>,
    journal: JournalHandle,
) -> Option<tokio::task::JoinHandle<()>> {
    if hooks.is_empty() {
        return None;
    }
    crate::checks::exec::close_inherited_on_exec();
    Some(tokio::spawn(async move {
        let mut queues: HashMap<(usize, String), mpsc::Sender<Job>> = HashMap::new();
        // A record read while looking for a transition's level record, handled next.
        let mut next: Option<Record> = None;
        // Each service's last state and prefixes, for a level change by a reload.
        let mut states: HashMap<String, wire::State> = HashMap::new();
        let mut prefixes: HashMap<String, Vec<wire::PrefixRef>> = HashMap::new();
        loop {
            let received = match next.take() {
                Some(record) => Ok(record),
                None => tap.recv().await,
            };
            let record = match received {
                Ok(record) => record,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "The hook runner missed {missed} journal record(s); their transitions run no hook."
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let (service, job) = match &record.event {
                Event::Reconfigured(r) => {
                    prefixes.insert(r.service.clone(), r.params.prefixes.clone());
                    continue;
                }
                // A level record after no transition: a reload changed the level.
                Event::Level(level) => (
                    level.service.clone(),
                    Job::of_level(
                        &record,
                        level,
                        states.get(&level.service),
                        prefixes.get(&level.service).cloned().unwrap_or_default(),
                    ),
                ),
                Event::Transition(transition) => {
                    states.insert(transition.service.clone(), transition.to.clone());
                    prefixes.insert(transition.service.clone(), transition.prefixes.clone());
                    // Its level record, taken also when no hook runs for it (it is no
                    // level change of its own).
                    let level = match tokio::time::timeout(LEVEL_WAIT, tap.recv()).await {
                        Ok(Ok(Record {
                            event: Event::Level(level),
                            ..
                        })) if level.service == transition.service => Some(level),
                        Ok(Ok(other)) => {
                            next = Some(other);
                            None
                        }
                        // Nothing more yet, or closed (the next read ends the runner), or
                        // lagged (the state alone says the level then).
                        _ => None,
                    };
                    // No change (a restoration at a start, a grace shortened), except a
                    // grace's end, which withdraws.
                    if transition.from == transition.to
                        && transition.cause != wire::Cause::GraceEnded
                    {
                        continue;
                    }
                    (
                        transition.service.clone(),
                        Job::of_transition(&record, transition, level),
                    )
                }
                _ => continue,
            };
            for (i, hook) in hooks.iter().enumerate() {
                let key = (i, service.clone());
                let queue = queues.entry(key).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(worker(hook.clone(), service.clone(), rx, journal.clone()));
                    tx
                });
                if let Err(mpsc::error::TrySendError::Full(job)) = queue.try_send(job.clone()) {
                    let failure = format!(
                        "not run: {QUEUE} earlier transitions of {service} still wait for this hook"
                    );
                    tracing::warn!(hook = %hook.command, service = %service, "Hook {}: {failure}.", hook.command);
                    journal.append(
                        crate::journal_handle::now_ms(),
                        vec![Event::HookRan(wire::HookRan {
                            service: service.clone(),
                            hook: hook.command.clone(),
                            transition_seq: job.seq,
                            failure: Some(failure),
                            duration_ms: 0,
                        })],
                    );
                }
            }
        }
    }))
}

/// Run `hook` for `service`'s transitions, one at a time, in order.
async fn worker(
    hook: Hook,
    service: String,
    mut jobs: mpsc::Receiver<Job>,
    journal: JournalHandle,
) {
    while let Some(job) = jobs.recv().await {
        let started = std::time::Instant::now();
        let mut probe = ExecProbe::new(
            &service,
            "hook",
            &ExecCheck {
                command: hook.command.clone(),
                args: hook.args.clone(),
                env: environment(&job),
                user: None,
            },
            hook.timeout,
        );
        let failure = match probe.poll().await {
            Observation::Pass => None,
            Observation::Fail(why) => Some(why),
            Observation::Pending => Some("no result".into()),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        if let Some(why) = &failure {
            tracing::warn!(hook = %hook.command, service = %service, seq = job.seq, "Hook {} failed for the transition of {service}: {why}.", hook.command);
        }
        journal.append(
            crate::journal_handle::now_ms(),
            vec![Event::HookRan(wire::HookRan {
                service: service.clone(),
                hook: hook.command.clone(),
                transition_seq: job.seq,
                failure,
                duration_ms,
            })],
        );
    }
}

/// The transition in a hook's environment.
fn environment(job: &Job) -> Vec<(String, String)> {
    let (announce, prefixes) = match job.change {
        wire::Change::Announce => ("1", &job.prefixes[..]),
        wire::Change::Withdraw => ("0", &job.prefixes[..]),
        wire::Change::None => ("", &[][..]),
    };
    vec![
        ("ANYCASTD_FROM".into(), job.from.into()),
        ("ANYCASTD_TO".into(), job.to.into()),
        ("ANYCASTD_CAUSE".into(), job.cause.clone()),
        (
            "ANYCASTD_PREFIXES".into(),
            prefixes
                .iter()
                .map(|p| p.prefix.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("ANYCASTD_ANNOUNCE".into(), announce.into()),
        ("ANYCASTD_SEQ".into(), job.seq.to_string()),
        (
            "ANYCASTD_TIME".into(),
            crate::audit::text::format_time(job.at_ms),
        ),
    ]
    .into_iter()
    .chain(level_environment(job))
    .collect()
}

/// The level a transition left the prefixes at, as variables.
fn level_environment(job: &Job) -> Vec<(String, String)> {
    let announced = matches!(job.change, wire::Change::Announce);
    let (level, attributes, grace_end) = match &job.level {
        Some(l) => (l.level, l.attributes.clone(), l.grace_until_ms),
        None => (
            announced.then_some(wire::Level::Normal),
            wire::Attributes::default(),
            None,
        ),
    };
    let name = match level {
        None => "withdrawn",
        Some(wire::Level::Normal) => "normal",
        Some(wire::Level::Depreferred) => "de-preferred",
        Some(wire::Level::GracefulShutdown) => "graceful-shutdown",
    };
    let words = |list: Vec<String>| list.join(" ");
    vec![
        ("ANYCASTD_LEVEL".into(), name.into()),
        (
            "ANYCASTD_AS_PATH_PREPEND".into(),
            attributes.as_path_prepend.to_string(),
        ),
        (
            "ANYCASTD_MED".into(),
            attributes.med.map(|m| m.to_string()).unwrap_or_default(),
        ),
        (
            "ANYCASTD_COMMUNITIES".into(),
            words(
                attributes
                    .communities
                    .iter()
                    .map(|c| crate::bgp::Community::from_u32(*c).to_string())
                    .collect(),
            ),
        ),
        (
            "ANYCASTD_LARGE_COMMUNITIES".into(),
            words(
                attributes
                    .large_communities
                    .iter()
                    .map(|(a, b, c)| format!("{a}:{b}:{c}"))
                    .collect(),
            ),
        ),
        (
            "ANYCASTD_GRACE_END".into(),
            grace_end
                .map(crate::audit::text::format_time)
                .unwrap_or_default(),
        ),
    ]
}
