//! The daemon's side of the control socket: bind it safely, accept connections, check the
//! caller ([`super::access`]), read one request and answer it with one handler per request
//! kind. A `--follow` reader that falls more than [`super::FOLLOW_BUFFER`] records behind is
//! told so and dropped; it never blocks the daemon.

use super::access::{access, action, group_gid, Access};
use super::protocol::{
    answer_line, parse_request, DrainResult, JournalLine, Request, Response, MAX_REQUEST_BYTES,
};
use super::{unknown_service, BindError, Context, DrainError, ReloadRequest, StopRequest};
use crate::audit::history::{self, Query};
use crate::config::ControlConfig;
use crate::exit;
use crate::observe::status;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Create the socket safely: make the parent directory, refuse a path where a live daemon
/// answers, replace a stale socket, set the mode. Returns the listener and the group ids.
pub fn bind(
    control: &ControlConfig,
) -> Result<(UnixListener, Option<u32>, Option<u32>), BindError> {
    let path = &control.socket;
    let read_gid = control.group.as_deref().map(group_gid).transpose()?;
    let admin_gid = control.admin_group.as_deref().map(group_gid).transpose()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| BindError::CreateDir {
            path: path.clone(),
            parent: parent.to_path_buf(),
            error,
        })?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(path.clone()));
        }
        std::fs::remove_file(path).map_err(|error| BindError::RemoveStale {
            path: path.clone(),
            error,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|error| BindError::Bind {
        path: path.clone(),
        error,
    })?;
    let mode = if read_gid.is_some() || admin_gid.is_some() {
        0o666
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|error| {
        BindError::Mode {
            path: path.clone(),
            error,
        }
    })?;
    Ok((listener, read_gid, admin_gid))
}

/// Accept connections until the listener fails; each is served on its own task.
pub fn serve(listener: UnixListener, context: Arc<Context>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let context = context.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_client(stream, &context).await {
                            tracing::debug!(error = %e, "control client");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Where a handler writes its answers.
struct Out(OwnedWriteHalf);

impl Out {
    async fn send(&mut self, response: Response) -> std::io::Result<()> {
        self.0.write_all(&answer_line(response)).await
    }

    async fn error(&mut self, code: u8, message: impl Into<String>) -> std::io::Result<()> {
        self.send(Response::Error {
            code,
            message: message.into(),
        })
        .await
    }
}

/// The caller, as the kernel tells.
struct Caller {
    uid: u32,
    pid: i32,
}

async fn serve_client(stream: UnixStream, context: &Context) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let caller = Caller {
        uid: cred.uid(),
        pid: cred.pid().unwrap_or(0),
    };
    let (read, write) = stream.into_split();
    let mut out = Out(write);
    let access = access(cred.uid(), cred.gid(), context);
    if access == Access::None {
        return out
            .error(
                exit::NOPERM,
                "permission denied: not root, not the daemon's user, not in [control] group or admin_group",
            )
            .await;
    }
    // Bytes first: a line that is not UTF-8 is answered like any other malformed line
    // (read_line failed on it, and the connection closed without a word).
    let mut bytes = Vec::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES));
    reader.read_until(b'\n', &mut bytes).await?;
    if !bytes.ends_with(b"\n") {
        return out
            .error(
                exit::USAGE,
                "request too large or not terminated by a newline",
            )
            .await;
    }
    let line = match String::from_utf8(bytes) {
        Ok(line) => line,
        Err(e) => {
            let message = format!(
                "malformed request: not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            );
            return out.error(exit::USAGE, message).await;
        }
    };
    let request = match parse_request(&line) {
        Ok(request) => request,
        Err(e) => return out.error(exit::USAGE, e).await,
    };
    if let Some(action) = action(&request) {
        if access < Access::Admin {
            let message = format!(
                "permission denied: {action} needs root, the daemon's user or [control] admin_group"
            );
            return out.error(exit::NOPERM, message).await;
        }
    }
    match request {
        Request::Status { service } => status_answer(&mut out, context, service).await?,
        Request::History { query, follow } => history(&mut out, context, query, follow).await?,
        Request::Drain { .. } | Request::Undrain { .. } => {
            match drain(request, &caller, context).await {
                Ok(results) => out.send(Response::Done { results }).await?,
                Err(refused) => {
                    let failure = exit::Failure::from(refused);
                    out.error(failure.code(), failure.to_string()).await?
                }
            }
        }
        Request::Replay {
            service,
            since_ms,
            until_ms,
            what_if,
        } => replay(&mut out, context, service, since_ms, until_ms, what_if).await?,
        Request::Report { since_ms, until_ms } => {
            report(&mut out, context, since_ms, until_ms).await?
        }
        Request::Reload => reload(&mut out, context, &caller).await?,
        Request::Stop {
            keep_announced,
            grace_ms,
        } => stop(&mut out, context, &caller, keep_announced, grace_ms).await?,
    }
    out.0.flush().await
}

async fn status_answer(
    out: &mut Out,
    context: &Context,
    service: Option<String>,
) -> std::io::Result<()> {
    let config = lock(&context.config).clone();
    if let Some(name) = &service {
        if let Some(message) = unknown_service(name, &config, None) {
            return out.error(exit::USAGE, message).await;
        }
    }
    let services = status_of(context, service.as_deref()).await;
    let notes = notes(context);
    let (line, view) = fleet_guard(context);
    out.send(Response::Status {
        services,
        notes,
        fleet_guard: Some(line),
        fleet_guard_state: Some(view),
    })
    .await
}

/// The fleet guard as `status` shows it: its line, and its fields.
pub fn fleet_guard(context: &Context) -> (String, crate::fleet::guard::GuardView) {
    match &context.fleet {
        Some(fleet) => (fleet.status_line(), fleet.view()),
        None => (
            crate::fleet::guard::OFF_LINE.to_owned(),
            crate::fleet::guard::GuardView::off(),
        ),
    }
}

/// What the daemon cannot do now, one line each: the writers whose routing daemon's
/// restarts are noticed only by the periodic pass.
pub fn notes(context: &Context) -> Vec<String> {
    lock(&context.writers)
        .values()
        .filter_map(|writer| writer.status().borrow().restart_detection_off.clone())
        .collect()
}

/// Every service's status (or `service`'s), as `status` shows it: the daemon's states next
/// to what the routing daemons have and advertise.
pub async fn status_of(context: &Context, service: Option<&str>) -> Vec<status::ServiceStatus> {
    let config = lock(&context.config).clone();
    let snapshots = snapshots(context, service).await;
    let pending = pending(context);
    status::collect(&config, &snapshots, true, &pending, service).await
}

/// The routing backends that cannot be read now (each read afresh), with why; empty when
/// every one answers.
pub async fn unreachable(context: &Context) -> Vec<String> {
    let config = lock(&context.config).clone();
    let ids: Vec<crate::routing::BackendId> = lock(&context.writers).keys().cloned().collect();
    let settings = config.routing();
    let mut problems = Vec::new();
    for id in ids {
        if let Err(e) = crate::routing::read(&settings, &id).await {
            problems.push(format!(
                "{}: {e}",
                crate::audit::text::backend_text(&id.to_string())
            ));
        }
    }
    problems
}

/// What the writers have not shown yet: with the writer's last error, if it failed.
fn pending(context: &Context) -> status::Pending {
    let writers = lock(&context.writers);
    writers
        .iter()
        .map(|(path, writer)| {
            let status = writer.status().borrow().clone();
            let list = writer
                .unsettled()
                .into_iter()
                .map(|key| {
                    let error = status
                        .pending
                        .iter()
                        .find(|(k, _, _)| *k == key)
                        .and_then(|(_, _, e)| e.clone())
                        .or(status.read_error.clone());
                    (key, error)
                })
                .collect();
            (path.clone(), list)
        })
        .collect()
}

async fn history(
    out: &mut Out,
    context: &Context,
    query: Query,
    follow: bool,
) -> std::io::Result<()> {
    if let Some(service) = &query.service {
        let config = lock(&context.config).clone();
        if let Some(message) = unknown_service(service, &config, context.reader.as_ref()) {
            return out.error(exit::USAGE, message).await;
        }
    }
    let Some(reader) = context.reader.clone() else {
        return out
            .error(exit::SOFTWARE, "the journal is unavailable in this daemon")
            .await;
    };
    // Subscribe before reading, so that nothing falls between the two.
    let mut tap = context.tap.subscribe();
    let selected_query = query.clone();
    let selection = tokio::task::spawn_blocking(move || history::select(&reader, &selected_query))
        .await
        .map_err(std::io::Error::other)?;
    let selection = match selection {
        Ok(s) => s,
        Err(e) => return out.error(exit::SOFTWARE, e.to_string()).await,
    };
    let mut last_seq = query.after_seq.unwrap_or(0);
    for record in &selection.records {
        last_seq = last_seq.max(record.seq);
        out.send(Response::Record {
            record: Box::new(JournalLine::of(record)),
        })
        .await?;
    }
    let skipped_unknown = selection.skipped_unknown;
    if !follow {
        return out.send(Response::End { skipped_unknown }).await;
    }
    out.send(Response::CaughtUp { skipped_unknown }).await?;
    let follow_query = Query {
        limit: None,
        tail: None,
        since_ms: None,
        until_ms: None,
        ..query
    };
    loop {
        match tap.recv().await {
            Ok(record) => {
                if record.seq > last_seq && follow_query.matches(&record) {
                    last_seq = record.seq;
                    out.send(Response::Record {
                        record: Box::new(JournalLine::of(&record)),
                    })
                    .await?;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let message =
                    format!("reader too slow, dropped; resume with --after-seq {last_seq}");
                return out.error(exit::SOFTWARE, message).await;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// Have the drivers (of `only`, or all) journal their unchanged results so far, so that a
/// re-run reaches until now.
async fn flush_runs(context: &Context, only: Option<&str>) {
    let drivers: Vec<_> = lock(&context.drivers)
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
        .map(|(_, driver)| driver.clone())
        .collect();
    for driver in drivers {
        let (tx, rx) = oneshot::channel();
        if driver
            .send(crate::service::driver::Command::FlushRuns(tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

async fn report(
    out: &mut Out,
    context: &Context,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
) -> std::io::Result<()> {
    let config = lock(&context.config).clone();
    let Some(reader) = context.reader.clone() else {
        return out
            .error(exit::SOFTWARE, "the journal is unavailable in this daemon")
            .await;
    };
    let configured: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    rerun(out, context, None, reader, move |reader, now| {
        let services = crate::audit::report::services(reader, &configured)?;
        let report =
            crate::audit::report::report(reader, &services, since_ms, until_ms, Some(now))?;
        Ok(Response::Report {
            report: Box::new(report),
        })
    })
    .await
}

/// Re-run journaled inputs until now (`replay`, `report`): the drivers (of `only`, or all)
/// journal their unchanged results first, then `work` reads the journal off the runtime.
async fn rerun(
    out: &mut Out,
    context: &Context,
    only: Option<&str>,
    reader: anycastd_journal::Reader,
    work: impl FnOnce(&anycastd_journal::Reader, i64) -> Result<Response, anycastd_journal::Error>
        + Send
        + 'static,
) -> std::io::Result<()> {
    flush_runs(context, only).await;
    let now = crate::journal_handle::now_ms();
    let result = tokio::task::spawn_blocking(move || work(&reader, now))
        .await
        .map_err(std::io::Error::other)?;
    match result {
        Ok(response) => out.send(response).await,
        Err(e) => out.error(exit::SOFTWARE, e.to_string()).await,
    }
}

async fn replay(
    out: &mut Out,
    context: &Context,
    service: String,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    what_if: crate::audit::replay::WhatIf,
) -> std::io::Result<()> {
    let config = lock(&context.config).clone();
    let Some(reader) = context.reader.clone() else {
        return out
            .error(exit::SOFTWARE, "the journal is unavailable in this daemon")
            .await;
    };
    if let Some(message) = unknown_service(&service, &config, Some(&reader)) {
        return out.error(exit::USAGE, message).await;
    }
    // The service's unchanged results so far are journaled first: the re-run goes on until
    // now.
    let only = service.clone();
    rerun(out, context, Some(&only), reader, move |reader, now| {
        let report = crate::audit::replay::replay_from(
            reader,
            &service,
            since_ms,
            until_ms,
            Some(now),
            &what_if,
        )?;
        Ok(Response::Replay {
            report: Box::new(report),
        })
    })
    .await
}

async fn reload(out: &mut Out, context: &Context, caller: &Caller) -> std::io::Result<()> {
    let (done_tx, done_rx) = oneshot::channel();
    let request = ReloadRequest {
        uid: caller.uid,
        done: done_tx,
    };
    if context.reload.send(request).await.is_err() {
        return out.error(exit::SOFTWARE, "the daemon is stopping").await;
    }
    match done_rx.await {
        Ok(Ok(message)) => out.send(Response::Reloaded { message }).await,
        Ok(Err(rejected)) => {
            let failure = exit::Failure::from(rejected);
            out.error(failure.code(), failure.to_string()).await
        }
        Err(_) => out.error(exit::SOFTWARE, "the daemon is stopping").await,
    }
}

async fn stop(
    out: &mut Out,
    context: &Context,
    caller: &Caller,
    keep_announced: bool,
    grace_ms: Option<u64>,
) -> std::io::Result<()> {
    let (done_tx, done_rx) = oneshot::channel();
    let stop = StopRequest {
        keep_announced,
        grace: grace_ms.map(std::time::Duration::from_millis),
        uid: caller.uid,
        pid: caller.pid,
        done: done_tx,
    };
    if context.stop.send(stop).await.is_err() {
        return out
            .error(exit::SOFTWARE, "the daemon is already stopping")
            .await;
    }
    match done_rx.await {
        Ok((code, message, left)) => {
            out.send(Response::Stopped {
                code,
                message,
                pid: std::process::id(),
                left,
            })
            .await
        }
        Err(_) => Ok(()),
    }
}

/// Every service's snapshot from its driver (`only`: one service).
async fn snapshots(context: &Context, only: Option<&str>) -> Vec<status::Snapshot> {
    let drivers: Vec<(String, mpsc::Sender<crate::service::driver::Command>)> =
        lock(&context.drivers)
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
            .map(|(name, tx)| (name.clone(), tx.clone()))
            .collect();
    let mut snapshots = Vec::new();
    for (name, tx) in drivers {
        let (reply, answer) = oneshot::channel();
        if tx
            .send(crate::service::driver::Command::Snapshot(reply))
            .await
            .is_ok()
        {
            if let Ok(snapshot) = answer.await {
                snapshots.push(snapshot);
                continue;
            }
        }
        // A driver that is stopping: its last known state.
        if let Some(view) = lock(&context.views).get(&name) {
            snapshots.push(status::Snapshot::from_view(view));
        }
    }
    snapshots
}

/// Carry out a drain or undrain, then (with a wait) watch the routing daemons confirm it.
async fn drain(
    request: Request,
    caller: &Caller,
    context: &Context,
) -> Result<Vec<DrainResult>, DrainError> {
    let (service, drain, wait_ms) = match request {
        Request::Drain {
            service,
            reason,
            for_ms,
            wait_ms,
            grace_ms,
            force,
        } => (service, Some((reason, for_ms, grace_ms, force)), wait_ms),
        Request::Undrain { service, wait_ms } => (service, None, wait_ms),
        _ => return Err(DrainError::NotADrain),
    };
    let targets = drain_targets(context, service.as_deref())?;
    // The guarded services this drain takes below their fleet's minimum, or whose fleet
    // cannot be read: refused, or forced (journaled, and said in the answer).
    let mut forced: Vec<(String, String)> = Vec::new();
    if let Some((reason, _, _, force)) = &drain {
        let names: Vec<&str> = targets.iter().map(|(name, _)| name.as_str()).collect();
        let below = below_minimum(context, &names).await;
        if !force && !below.is_empty() {
            return Err(DrainError::FleetMinimum {
                lines: below.iter().map(refusal_line).collect(),
            });
        }
        if !below.is_empty() {
            forced = journal_forced(context, below, reason, caller).await;
        }
    }
    let drain = drain.map(|(reason, for_ms, grace_ms, _)| (reason, for_ms, grace_ms));
    let now = crate::journal_handle::now_ms();
    let mut replies = Vec::new();
    for (name, tx) in targets {
        let (reply_tx, reply_rx) = oneshot::channel();
        let command = drain_command(&name, drain.as_ref(), caller, now, reply_tx);
        let reply = if tx.send(command).await.is_ok() {
            reply_rx.await.ok()
        } else {
            None
        };
        replies.push((name, reply));
    }
    // Wait for the routing daemons once for all of them.
    let handed: Vec<crate::service::driver::Handed> = replies
        .iter()
        .flat_map(|(_, r)| r.iter().flat_map(|r| r.handed.iter().cloned()))
        .collect();
    let left = match wait_ms {
        Some(ms) if !handed.is_empty() => {
            crate::service::driver::verify(&handed, std::time::Duration::from_millis(ms)).await
        }
        _ => Vec::new(),
    };
    Ok(replies
        .into_iter()
        .map(|(name, mut reply)| {
            // Said right after what the drain did: `drained; forced past the fleet guard: ...`.
            if let (Some(reply), Some((_, text))) =
                (reply.as_mut(), forced.iter().find(|(s, _)| *s == name))
            {
                reply.note.push_str(&format!("; {text}"));
            }
            drain_result(name, reply, &left, wait_ms.is_some())
        })
        .collect())
}

/// A guarded service that a drain would take below its fleet's minimum (this site announces
/// it and too few other sites do), or whose fleet cannot be read to tell (nobody can tell
/// what the drain leaves; docs: README, "Fleet guard").
struct Below {
    service: String,
    rule: crate::fleet::Rule,
    fleet: anycastd_journal::wire::ForcedFleet,
}

/// The services among `services` that a drain would take below their fleet's minimum.
async fn below_minimum(context: &Context, services: &[&str]) -> Vec<Below> {
    use anycastd_journal::wire::ForcedFleet;
    let config = lock(&context.config).clone();
    let Some(settings) = &config.fleet else {
        return Vec::new();
    };
    let unread = |e: crate::fleet::store::StoreError| ForcedFleet::Unread {
        error: format!(
            "etcd at {} cannot be read: {e}",
            settings.endpoints.join(", ")
        ),
    };
    let mut below = Vec::new();
    // One connection for all of them (an etcd that does not answer costs its timeout once).
    let mut client: Option<Result<etcd_client::Client, ForcedFleet>> = None;
    for service in config
        .services
        .iter()
        .filter(|s| services.contains(&s.name.as_str()))
    {
        let Some(rule) = service.fleet else { continue };
        if client.is_none() {
            client = Some(crate::fleet::store::connect(settings).await.map_err(unread));
        }
        let read = match client.as_mut() {
            Some(Ok(client)) => {
                crate::fleet::store::below_minimum_if_drained(client, settings, &service.name, rule)
                    .await
                    .map_err(unread)
            }
            Some(Err(e)) => Err(e.clone()),
            None => continue,
        };
        let fleet = match read {
            Ok(None) => continue,
            Ok(Some(count)) => ForcedFleet::Counted {
                left_announcing: count.others_announcing,
                sites: count.sites,
            },
            Err(unread) => unread,
        };
        below.push(Below {
            service: service.name.clone(),
            rule,
            fleet,
        });
    }
    below
}

/// Why a drain without `--force` is refused for one service.
fn refusal_line(below: &Below) -> String {
    use anycastd_journal::wire::ForcedFleet;
    let name = &below.service;
    match &below.fleet {
        ForcedFleet::Counted {
            left_announcing,
            sites,
        } => format!(
            "refused: draining {name} would take its fleet below its minimum: {} of {sites} sites announce {name} now ({}), {left_announcing} would after the drain; use --force to drain anyway",
            left_announcing + 1,
            below.rule.text(),
        ),
        ForcedFleet::Unread { error } => format!(
            "refused: cannot tell whether draining {name} takes its fleet below its minimum ({}): {error}; use --force to drain anyway",
            below.rule.text(),
        ),
    }
}

/// Journal each drain forced past the fleet guard (before the drain's own records), log it,
/// and return what the answer says of it, per service.
async fn journal_forced(
    context: &Context,
    below: Vec<Below>,
    reason: &str,
    caller: &Caller,
) -> Vec<(String, String)> {
    let mut said = Vec::new();
    let mut records = Vec::new();
    for below in below {
        let rule = below.rule.text();
        let text = format!(
            "forced past the fleet guard: {}",
            crate::audit::text::forced_fleet_text(&below.service, &rule, &below.fleet)
        );
        tracing::warn!(service = %below.service, uid = caller.uid, "Drain of service \"{}\" ({reason}) {text}.", below.service);
        said.push((below.service.clone(), text));
        records.push(anycastd_journal::wire::Event::DrainForced(
            anycastd_journal::wire::DrainForced {
                service: below.service,
                reason: reason.to_owned(),
                uid: caller.uid,
                pid: caller.pid,
                rule,
                fleet: below.fleet,
            },
        ));
    }
    let now = crate::journal_handle::now_ms();
    if let Err(e) = context.journal.append_durable(now, records).await {
        tracing::error!(error = %e, "cannot journal the drain forced past the fleet guard; draining anyway");
    }
    said
}

/// The drivers a drain or undrain goes to: the one named, or every one.
fn drain_targets(
    context: &Context,
    service: Option<&str>,
) -> Result<Vec<(String, mpsc::Sender<crate::service::driver::Command>)>, DrainError> {
    let drivers = lock(&context.drivers);
    match service {
        Some(name) => match drivers.get(name) {
            Some(tx) => Ok(vec![(name.to_owned(), tx.clone())]),
            None => {
                let known: Vec<String> = drivers.keys().cloned().collect();
                Err(DrainError::UnknownService {
                    name: name.to_owned(),
                    known,
                })
            }
        },
        None => Ok(drivers
            .iter()
            .map(|(n, tx)| (n.clone(), tx.clone()))
            .collect()),
    }
}

/// The command to one driver: a drain (`drain`: its reason and duration) or an undrain, with
/// the operator record it journals.
fn drain_command(
    service: &str,
    drain: Option<&(String, Option<u64>, Option<u64>)>,
    caller: &Caller,
    now: i64,
    reply: oneshot::Sender<crate::service::driver::OperatorReply>,
) -> crate::service::driver::Command {
    use anycastd_journal::wire::{OperatorAction, OperatorKind};
    let (uid, pid) = (caller.uid, caller.pid);
    match drain {
        Some((reason, for_ms, grace_ms)) => {
            let expires_at_ms =
                for_ms.map(|ms| now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
            let kind = OperatorKind::Drain {
                service: service.to_owned(),
                reason: reason.clone(),
                expires_at_ms,
            };
            crate::service::driver::Command::Drain {
                cause: Box::new(anycastd_fsm::DrainCause::Operator {
                    reason: reason.clone(),
                    expires_at: expires_at_ms.map(anycastd_fsm::Timestamp),
                    uid,
                }),
                operator: Box::new(OperatorAction { kind, uid, pid }),
                grace: grace_ms.map(std::time::Duration::from_millis),
                reply,
            }
        }
        None => {
            let kind = OperatorKind::Undrain {
                service: service.to_owned(),
            };
            crate::service::driver::Command::Undrain {
                operator: Box::new(OperatorAction { kind, uid, pid }),
                reply,
            }
        }
    }
}

/// What a drain or undrain did to one service, and how its routing daemons took it: `left`
/// are the prefixes they did not show within the wait (`waited`), with their last errors.
fn drain_result(
    name: String,
    reply: Option<crate::service::driver::OperatorReply>,
    left: &[(crate::routing::PrefixKey, Option<String>)],
    waited: bool,
) -> DrainResult {
    let Some(reply) = reply else {
        return DrainResult {
            service: name,
            note: "the service is stopping".into(),
            state: "stopping".into(),
            prefixes: 0,
            verified: None,
            unverified: Vec::new(),
        };
    };
    let keys: Vec<&crate::routing::PrefixKey> =
        reply.handed.iter().flat_map(|h| h.keys.iter()).collect();
    // The prefixes the daemons did not show, grouped by their error.
    let mut by_error: Vec<(String, Vec<String>)> = Vec::new();
    for ((place, prefix), error) in left.iter().filter(|(key, _)| keys.contains(&key)) {
        let kind = reply
            .handed
            .iter()
            .find(|h| h.keys.contains(&(place.clone(), *prefix)))
            .map_or(crate::routing::KINDS[0], |h| h.writer.backend().kind);
        let prefix = kind.place_text(&prefix.to_string(), place.name());
        let error = error.clone().unwrap_or_else(|| "not confirmed yet".into());
        match by_error.iter_mut().find(|(e, _)| *e == error) {
            Some((_, prefixes)) => prefixes.push(prefix),
            None => by_error.push((error, vec![prefix])),
        }
    }
    let unverified: Vec<String> = by_error
        .iter()
        .map(|(error, prefixes)| format!("{}: {error}", prefixes.join(", ")))
        .collect();
    let unverified_count: usize = by_error.iter().map(|(_, p)| p.len()).sum();
    let (verb, done, noun) = if reply.announced {
        ("announce", "announced", "announcement")
    } else {
        ("withdraw", "withdrawn", "withdrawal")
    };
    let verified = (waited && !keys.is_empty()).then_some(unverified.is_empty());
    let mut daemons: Vec<&str> = Vec::new();
    for h in &reply.handed {
        let label = h.writer.backend().kind.label();
        if !h.keys.is_empty() && !daemons.contains(&label) {
            daemons.push(label);
        }
    }
    let shows = if daemons.len() > 1 { "show" } else { "shows" };
    let daemon = daemons.join(" and ");
    // Those that have not confirmed: the daemons of the prefixes left.
    let mut pending_daemons: Vec<&str> = Vec::new();
    for ((vrf, prefix), _) in left.iter().filter(|(key, _)| keys.contains(&key)) {
        if let Some(h) = reply
            .handed
            .iter()
            .find(|h| h.keys.contains(&(vrf.clone(), *prefix)))
        {
            let label = h.writer.backend().kind.label();
            if !pending_daemons.contains(&label) {
                pending_daemons.push(label);
            }
        }
    }
    let have = if pending_daemons.len() > 1 {
        "have"
    } else {
        "has"
    };
    let pending_daemon = if pending_daemons.is_empty() {
        daemon.clone()
    } else {
        pending_daemons.join(" and ")
    };
    let what = match verified {
        _ if keys.is_empty() => String::new(),
        None => format!(
            "; {verb} {} prefix(es) requested, not waited for",
            keys.len()
        ),
        Some(true) => format!("; {daemon} {shows} {} prefix(es) {done}", keys.len()),
        Some(false) => format!(
            "; {pending_daemon} {have} NOT confirmed the {noun} of {} of {} prefix(es) yet: {}",
            unverified_count,
            keys.len(),
            unverified.join("; ")
        ),
    };
    DrainResult {
        service: name,
        note: format!("{}{what}", reply.note),
        state: crate::audit::text::state_text(&(&reply.state).into()),
        prefixes: keys.len(),
        verified,
        unverified,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
