//! The control socket: a Unix socket speaking versioned JSON lines, for `status`, `history`
//! (with `--follow`) and `stop` while the daemon runs.
//!
//! Protocol (version 1): the client sends one request line,
//! `{"version":1,"command":"status"}`,
//! `{"version":1,"command":"history","service":"dns","since_ms":...,"until_ms":...,"limit":...,"after_seq":...,"follow":false}` or
//! `{"version":1,"command":"stop","keep_announced":false}`;
//! the server answers with lines `{"version":1,"type":...}`: `record` (one per journal
//! record), `status`, `stopped`, `end`, or `error` (with an exit `code`). Requests larger than
//! [`MAX_REQUEST_BYTES`] or not JSON get an error line and the connection is closed.
//!
//! Access (SO_PEERCRED): root and the daemon's own user may do everything; members of
//! `[control] admin_group` may also stop; members of `[control] group` may read (status,
//! history); anyone else is refused. The socket file is 0600 when no group is configured,
//! else 0666 with the check above. A `--follow` reader that falls more than
//! [`FOLLOW_BUFFER`] records behind is told so and dropped; it never blocks the daemon.

use crate::config::{Config, ControlConfig};
use crate::history::{self, Query};
use crate::status::{self, ServiceView};
use anycastd_journal::{Reader, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Protocol version spoken.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request line accepted.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Records a `--follow` reader may fall behind before it is dropped.
pub const FOLLOW_BUFFER: usize = 4096;

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Service states and prefix status.
    Status {
        /// Only this service.
        #[serde(default)]
        service: Option<String>,
    },
    /// Journal records.
    History {
        /// Which records.
        #[serde(flatten)]
        query: Query,
        /// Keep streaming new records.
        #[serde(default)]
        follow: bool,
    },
    /// Drain services: withdraw whatever the checks say.
    Drain {
        /// The service (`None`: every service).
        service: Option<String>,
        /// Why (journaled, shown in status and history).
        reason: String,
        /// End the drain by itself after this long.
        for_ms: Option<u64>,
        /// Answer once FRR shows the withdrawal, waiting at most this long (`None`: answer
        /// once it is journaled and handed to the writers).
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    /// End operator drains.
    Undrain {
        /// The service (`None`: every service).
        service: Option<String>,
        /// As for `Drain`.
        #[serde(default)]
        wait_ms: Option<u64>,
    },
    /// Reload the configuration file; answered with the result.
    Reload,
    /// Re-run a service's journal (postmortem replay, what-if).
    Replay {
        /// The service.
        service: String,
        /// Window start (ms).
        since_ms: Option<i64>,
        /// Window end (ms).
        until_ms: Option<i64>,
        /// Other parameters.
        #[serde(default)]
        what_if: crate::replay::WhatIf,
    },
    /// Stop the daemon.
    Stop {
        /// Exit without withdrawing (planned restart).
        #[serde(default)]
        keep_announced: bool,
    },
}

/// A request with its protocol version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// Must be [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// Parse a request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let envelope: Envelope =
        serde_json::from_str(line.trim()).map_err(|e| format!("malformed request: {e}"))?;
    if envelope.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} not supported (this daemon speaks {PROTOCOL_VERSION})",
            envelope.version
        ));
    }
    Ok(envelope.request)
}

/// A stop asked through the socket.
#[derive(Debug)]
pub struct StopRequest {
    /// Exit without withdrawing.
    pub keep_announced: bool,
    /// Caller's uid.
    pub uid: u32,
    /// Caller's pid.
    pub pid: i32,
    /// Answered with (exit code, message) once the daemon has stopped.
    pub done: oneshot::Sender<(u8, String)>,
}

/// A reload asked through the socket: answered with a summary, or (exit code, errors).
#[derive(Debug)]
pub struct ReloadRequest {
    /// The caller's uid (journaled when the reload is rejected).
    pub uid: u32,
    /// The answer.
    pub done: oneshot::Sender<Result<String, (u8, String)>>,
}

/// What the server needs from the daemon.
pub struct Context {
    /// Journal reads (`None` when the journal is unavailable).
    pub reader: Option<Reader>,
    /// Every record as it is committed.
    pub tap: broadcast::Sender<Record>,
    /// Each service's state.
    pub views: Arc<Mutex<BTreeMap<String, ServiceView>>>,
    /// The running config (replaced by a reload).
    pub config: Arc<Mutex<Arc<Config>>>,
    /// Where stops go.
    pub stop: mpsc::Sender<StopRequest>,
    /// Where reloads go.
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Each service's driver.
    pub drivers: Arc<Mutex<BTreeMap<String, mpsc::Sender<crate::driver::Command>>>>,
    /// The journal, for operator records.
    pub journal: crate::journal::JournalHandle,
    /// The FRR writers (what they have not applied yet, for `status`).
    pub writers: crate::driver::Writers,
    /// gid of `[control] group`.
    pub read_gid: Option<u32>,
    /// gid of `[control] admin_group`.
    pub admin_gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    None,
    Read,
    Admin,
}

fn group_gid(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("control group {name:?} does not exist")),
        Err(e) => Err(format!("control group {name:?}: {e}")),
    }
}

/// Create the socket safely: make the parent directory, refuse a path where a live daemon
/// answers, replace a stale socket, set the mode. Returns the listener and the group ids.
pub fn bind(control: &ControlConfig) -> Result<(UnixListener, Option<u32>, Option<u32>), String> {
    let path = &control.socket;
    let read_gid = control.group.as_deref().map(group_gid).transpose()?;
    let admin_gid = control.admin_group.as_deref().map(group_gid).transpose()?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            format!(
                "control socket {}: cannot create {}: {e}",
                path.display(),
                parent.display()
            )
        })?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {} is in use by a running anycastd",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            format!(
                "control socket {}: cannot remove the stale socket: {e}",
                path.display()
            )
        })?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("control socket {}: cannot bind: {e}", path.display()))?;
    let mode = if read_gid.is_some() || admin_gid.is_some() {
        0o666
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        format!(
            "control socket {}: cannot set its mode: {e}",
            path.display()
        )
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

fn access(uid: u32, gid: u32, context: &Context) -> Access {
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return Access::Admin;
    }
    let mut groups = vec![gid];
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        if let Ok(name) = std::ffi::CString::new(user.name) {
            if let Ok(list) = nix::unistd::getgrouplist(&name, user.gid) {
                groups.extend(list.iter().map(|g| g.as_raw()));
            }
        }
    }
    if context.admin_gid.is_some_and(|g| groups.contains(&g)) {
        Access::Admin
    } else if context.read_gid.is_some_and(|g| groups.contains(&g)) {
        Access::Read
    } else {
        Access::None
    }
}

fn line(value: serde_json::Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

fn error_line(code: u8, message: &str) -> Vec<u8> {
    line(
        serde_json::json!({"version": PROTOCOL_VERSION, "type": "error", "code": code, "message": message}),
    )
}

async fn serve_client(stream: UnixStream, context: &Context) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let (read, mut write) = stream.into_split();
    let access = access(cred.uid(), cred.gid(), context);
    if access == Access::None {
        write
            .write_all(&error_line(
                crate::exit::NOPERM,
                "permission denied: not root, not the daemon's user, not in [control] group or admin_group",
            ))
            .await?;
        return Ok(());
    }
    let mut request = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES));
    reader.read_line(&mut request).await?;
    if !request.ends_with('\n') {
        write
            .write_all(&error_line(
                crate::exit::USAGE,
                "request too large or not terminated by a newline",
            ))
            .await?;
        return Ok(());
    }
    let request = match parse_request(&request) {
        Ok(r) => r,
        Err(e) => {
            write.write_all(&error_line(crate::exit::USAGE, &e)).await?;
            return Ok(());
        }
    };
    // Acting needs root, the daemon's user or the admin group; reading needs the read group.
    let action = match &request {
        Request::Drain { .. } => Some("drain"),
        Request::Undrain { .. } => Some("undrain"),
        Request::Reload => Some("reload"),
        Request::Stop { .. } => Some("stop"),
        Request::Status { .. } | Request::History { .. } | Request::Replay { .. } => None,
    };
    if let Some(action) = action {
        if access < Access::Admin {
            let message =
                format!("permission denied: {action} needs root, the daemon's user or [control] admin_group");
            write
                .write_all(&error_line(crate::exit::NOPERM, &message))
                .await?;
            return Ok(());
        }
    }
    match request {
        Request::Status { service } => {
            let config = lock(&context.config).clone();
            if let Some(name) = &service {
                if let Some(message) = unknown_service(name, &config, None) {
                    write
                        .write_all(&error_line(crate::exit::USAGE, &message))
                        .await?;
                    return Ok(());
                }
            }
            let snapshots = snapshots(context, service.as_deref()).await;
            let pending: status::Pending = {
                let writers = lock(&context.writers);
                writers
                    .iter()
                    .map(|(path, writer)| {
                        // Not yet shown by FRR: with the writer's last error, if it failed.
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
                                    .or(status.frr_error.clone());
                                (key, error)
                            })
                            .collect();
                        (path.clone(), list)
                    })
                    .collect()
            };
            let services =
                status::collect(&config, &snapshots, true, &pending, service.as_deref()).await;
            write
                .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "status", "services": services})))
                .await?;
        }
        Request::History { query, follow } => {
            if let Some(service) = &query.service {
                let config = lock(&context.config).clone();
                let unknown = unknown_service(service, &config, context.reader.as_ref());
                if let Some(message) = unknown {
                    write
                        .write_all(&error_line(crate::exit::USAGE, &message))
                        .await?;
                    return Ok(());
                }
            }
            let Some(reader) = &context.reader else {
                write
                    .write_all(&error_line(
                        crate::exit::SOFTWARE,
                        "the journal is unavailable in this daemon",
                    ))
                    .await?;
                return Ok(());
            };
            // Subscribe before reading, so that nothing falls between the two.
            let mut tap = context.tap.subscribe();
            let reader = reader.clone();
            let selected_query = query.clone();
            let selection =
                tokio::task::spawn_blocking(move || history::select(&reader, &selected_query))
                    .await
                    .map_err(std::io::Error::other)?;
            let selection = match selection {
                Ok(s) => s,
                Err(e) => {
                    write
                        .write_all(&error_line(crate::exit::SOFTWARE, &e.to_string()))
                        .await?;
                    return Ok(());
                }
            };
            let mut last_seq = query.after_seq.unwrap_or(0);
            for record in &selection.records {
                last_seq = last_seq.max(record.seq);
                write.write_all(&record_line(record)).await?;
            }
            if !follow {
                write
                    .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "end", "skipped_unknown": selection.skipped_unknown})))
                    .await?;
                return Ok(());
            }
            write
                .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "caught_up", "skipped_unknown": selection.skipped_unknown})))
                .await?;
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
                            write.write_all(&record_line(&record)).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let message =
                            format!("reader too slow, dropped; resume with --after-seq {last_seq}");
                        write
                            .write_all(&error_line(crate::exit::SOFTWARE, &message))
                            .await?;
                        return Ok(());
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        Request::Drain { .. } | Request::Undrain { .. } => {
            match drain(request, cred.uid(), cred.pid().unwrap_or(0), context).await {
                Ok(results) => {
                    write
                        .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "done", "results": results})))
                        .await?;
                }
                Err(message) => {
                    write
                        .write_all(&error_line(crate::exit::USAGE, &message))
                        .await?
                }
            }
        }
        Request::Replay {
            service,
            since_ms,
            until_ms,
            what_if,
        } => {
            let config = lock(&context.config).clone();
            let Some(reader) = context.reader.clone() else {
                write
                    .write_all(&error_line(
                        crate::exit::SOFTWARE,
                        "the journal is unavailable in this daemon",
                    ))
                    .await?;
                return Ok(());
            };
            if let Some(message) = unknown_service(&service, &config, Some(&reader)) {
                write
                    .write_all(&error_line(crate::exit::USAGE, &message))
                    .await?;
                return Ok(());
            }
            // The service's unchanged results so far are journaled first: the re-run goes on
            // until now.
            let driver = lock(&context.drivers).get(&service).cloned();
            if let Some(driver) = driver {
                let (tx, rx) = oneshot::channel();
                if driver
                    .send(crate::driver::Command::FlushRuns(tx))
                    .await
                    .is_ok()
                {
                    let _ = rx.await;
                }
            }
            let now = crate::journal::now_ms();
            let result = tokio::task::spawn_blocking(move || {
                crate::replay::replay_from(
                    &reader,
                    &service,
                    since_ms,
                    until_ms,
                    Some(now),
                    &what_if,
                )
            })
            .await
            .map_err(std::io::Error::other)?;
            match result {
                Ok(report) => {
                    write
                        .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "replay", "report": report})))
                        .await?
                }
                Err(e) => write.write_all(&error_line(crate::exit::SOFTWARE, &e)).await?,
            }
        }
        Request::Reload => {
            let (done_tx, done_rx) = oneshot::channel();
            if context
                .reload
                .send(ReloadRequest {
                    uid: cred.uid(),
                    done: done_tx,
                })
                .await
                .is_err()
            {
                write
                    .write_all(&error_line(crate::exit::SOFTWARE, "the daemon is stopping"))
                    .await?;
                return Ok(());
            }
            match done_rx.await {
                Ok(Ok(message)) => {
                    write
                        .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "reloaded", "message": message})))
                        .await?
                }
                Ok(Err((code, message))) => write.write_all(&error_line(code, &message)).await?,
                Err(_) => write.write_all(&error_line(crate::exit::SOFTWARE, "the daemon is stopping")).await?,
            }
        }
        Request::Stop { keep_announced } => {
            let (done_tx, done_rx) = oneshot::channel();
            let stop = StopRequest {
                keep_announced,
                uid: cred.uid(),
                pid: cred.pid().unwrap_or(0),
                done: done_tx,
            };
            if context.stop.send(stop).await.is_err() {
                write
                    .write_all(&error_line(
                        crate::exit::SOFTWARE,
                        "the daemon is already stopping",
                    ))
                    .await?;
                return Ok(());
            }
            if let Ok((code, message)) = done_rx.await {
                write
                    .write_all(&line(serde_json::json!({"version": PROTOCOL_VERSION, "type": "stopped", "code": code, "message": message, "pid": std::process::id()})))
                    .await?;
            }
        }
    }
    write.flush().await
}

/// Every service's snapshot from its driver (`only`: one service).
async fn snapshots(context: &Context, only: Option<&str>) -> Vec<status::Snapshot> {
    let drivers: Vec<(String, mpsc::Sender<crate::driver::Command>)> = lock(&context.drivers)
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
        .map(|(name, tx)| (name.clone(), tx.clone()))
        .collect();
    let mut snapshots = Vec::new();
    for (name, tx) in drivers {
        let (reply, answer) = oneshot::channel();
        if tx
            .send(crate::driver::Command::Snapshot(reply))
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

/// What a drain or undrain did to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainResult {
    /// The service.
    pub service: String,
    /// What happened, in words.
    pub note: String,
    /// Its state after it (`healthy`, `draining (operator uid 0: ...)`, ...).
    pub state: String,
    /// Prefixes whose announcement or withdrawal it asked of FRR.
    pub prefixes: usize,
    /// `Some(true)`: FRR shows every change; `Some(false)`: not all within the wait;
    /// `None`: not waited for, or nothing to change.
    pub verified: Option<bool>,
    /// The changes FRR did not show within the wait, each with FRR's last error.
    pub unverified: Vec<String>,
}

/// Carry out a drain or undrain, then (with a wait) watch FRR confirm it.
async fn drain(
    request: Request,
    uid: u32,
    pid: i32,
    context: &Context,
) -> Result<Vec<DrainResult>, String> {
    let (service, drain, wait_ms) = match request {
        Request::Drain {
            service,
            reason,
            for_ms,
            wait_ms,
        } => (service, Some((reason, for_ms)), wait_ms),
        Request::Undrain { service, wait_ms } => (service, None, wait_ms),
        _ => return Err("not a drain request".into()),
    };
    let targets: Vec<(String, mpsc::Sender<crate::driver::Command>)> = {
        let drivers = lock(&context.drivers);
        match &service {
            Some(name) => match drivers.get(name) {
                Some(tx) => vec![(name.clone(), tx.clone())],
                None => {
                    let known: Vec<&str> = drivers.keys().map(String::as_str).collect();
                    return Err(format!(
                        "unknown service {name:?}; known services: {}",
                        known.join(", ")
                    ));
                }
            },
            None => drivers
                .iter()
                .map(|(n, tx)| (n.clone(), tx.clone()))
                .collect(),
        }
    };
    let now = crate::journal::now_ms();
    let mut replies = Vec::new();
    for (name, tx) in targets {
        let (reply_tx, reply_rx) = oneshot::channel();
        let command = match &drain {
            Some((reason, for_ms)) => {
                let expires_at_ms =
                    for_ms.map(|ms| now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)));
                let kind = anycastd_journal::wire::OperatorKind::Drain {
                    service: name.clone(),
                    reason: reason.clone(),
                    expires_at_ms,
                };
                crate::driver::Command::Drain {
                    cause: Box::new(anycastd_fsm::DrainCause::Operator {
                        reason: reason.clone(),
                        expires_at: expires_at_ms.map(anycastd_fsm::Timestamp),
                        uid,
                    }),
                    operator: Box::new(anycastd_journal::wire::OperatorAction { kind, uid, pid }),
                    reply: reply_tx,
                }
            }
            None => {
                let kind = anycastd_journal::wire::OperatorKind::Undrain {
                    service: name.clone(),
                };
                crate::driver::Command::Undrain {
                    operator: Box::new(anycastd_journal::wire::OperatorAction { kind, uid, pid }),
                    reply: reply_tx,
                }
            }
        };
        let reply = if tx.send(command).await.is_ok() {
            reply_rx.await.ok()
        } else {
            None
        };
        replies.push((name, reply));
    }
    // Wait for FRR once for all of them.
    let handed: Vec<crate::driver::Handed> = replies
        .iter()
        .flat_map(|(_, r)| r.iter().flat_map(|r| r.handed.iter().cloned()))
        .collect();
    let left = match wait_ms {
        Some(ms) if !handed.is_empty() => {
            crate::driver::verify(&handed, std::time::Duration::from_millis(ms)).await
        }
        _ => Vec::new(),
    };
    Ok(replies
        .into_iter()
        .map(|(name, reply)| {
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
            let keys: Vec<&crate::frr::writer::PrefixKey> =
                reply.handed.iter().flat_map(|h| h.keys.iter()).collect();
            // The prefixes FRR did not show, grouped by their error.
            let mut by_error: Vec<(String, Vec<String>)> = Vec::new();
            for ((vrf, prefix), error) in left.iter().filter(|(key, _)| keys.contains(&key)) {
                let prefix = crate::driver::prefix_text(&prefix.to_string(), vrf.as_deref());
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
            let announced = reply.state.announces();
            let (verb, done, noun) = if announced {
                ("announce", "announced", "announcement")
            } else {
                ("withdraw", "withdrawn", "withdrawal")
            };
            let verified = match (wait_ms, keys.is_empty()) {
                (_, true) | (None, _) => None,
                (Some(_), false) => Some(unverified.is_empty()),
            };
            let what = match verified {
                _ if keys.is_empty() => String::new(),
                None => format!(
                    "; {verb} {} prefix(es) requested, not waited for",
                    keys.len()
                ),
                Some(true) => format!("; FRR shows {} prefix(es) {done}", keys.len()),
                Some(false) => format!(
                    "; FRR has NOT confirmed the {noun} of {} of {} prefix(es) yet: {}",
                    unverified_count,
                    keys.len(),
                    unverified.join("; ")
                ),
            };
            DrainResult {
                service: name,
                note: format!("{}{what}", reply.note),
                state: crate::history::state_text(&(&reply.state).into()),
                prefixes: keys.len(),
                verified,
                unverified,
            }
        })
        .collect())
}

fn record_line(record: &Record) -> Vec<u8> {
    line(
        serde_json::json!({"version": PROTOCOL_VERSION, "type": "record", "record": history::render_json(record)}),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `None` if `service` is configured or in the journal, else the error text listing the
/// known services.
pub fn unknown_service(service: &str, config: &Config, reader: Option<&Reader>) -> Option<String> {
    let mut known: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    if let Some(reader) = reader {
        if let Ok(states) = reader.last_states() {
            known.extend(states.into_iter().map(|(name, _)| name));
        }
    }
    known.sort();
    known.dedup();
    (!known.iter().any(|k| k == service)).then(|| {
        format!(
            "unknown service {service:?}; known services: {} (the daemon knows the services of the configuration it last loaded: after adding one to the file, `anycastd reload`)",
            known.join(", ")
        )
    })
}

/// Why a client could not talk to a daemon.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens on the socket (missing or refused).
    NoDaemon(String),
    /// The socket refuses this user (its file mode).
    Denied(String),
    /// Anything else.
    Other(String),
}

/// Connect to the daemon's socket and send one request; returns a reader of answer lines.
pub async fn request(
    path: &Path,
    request: &Request,
) -> Result<tokio::io::Lines<BufReader<UnixStream>>, ClientError> {
    let mut stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NoDaemon(format!(
                "no anycastd listens on {}: {e}",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ClientError::Denied(format!(
                "permission denied on the control socket {}: not root, not the daemon's user, not in [control] group or admin_group",
                path.display()
            )))
        }
        Err(e) => {
            return Err(ClientError::Other(format!(
                "control socket {}: {e}",
                path.display()
            )))
        }
    };
    let envelope = Envelope {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    };
    let mut bytes = serde_json::to_vec(&envelope).map_err(|e| ClientError::Other(e.to_string()))?;
    bytes.push(b'\n');
    // A refused caller is answered (and hung up on) before its request is read: a failed
    // write is not the end, the answer may be waiting.
    let _ = stream.write_all(&bytes).await;
    Ok(BufReader::new(stream).lines())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_versions_are_checked() {
        assert_eq!(
            parse_request("{\"version\":1,\"command\":\"status\"}\n"),
            Ok(Request::Status { service: None })
        );
        assert_eq!(
            parse_request(
                "{\"version\":1,\"command\":\"history\",\"service\":\"dns\",\"limit\":5}"
            ),
            Ok(Request::History {
                query: Query {
                    service: Some("dns".into()),
                    limit: Some(5),
                    ..Query::default()
                },
                follow: false
            })
        );
        assert!(parse_request("{\"version\":2,\"command\":\"status\"}")
            .unwrap_err()
            .contains("version 2"));
        assert!(parse_request("garbage")
            .unwrap_err()
            .starts_with("malformed request"));
        assert!(parse_request("{\"version\":1,\"command\":\"reboot\"}").is_err());
    }
}
