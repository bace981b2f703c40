//! The guard's task: one per daemon, it holds this site's etcd lease (kept alive every third
//! of its TTL), publishes the drivers' records under it, watches the fleet's keys, and
//! answers the drivers' guarded withdrawals.
//!
//! The drivers never wait on etcd: they send requests on an unbounded queue and read answers
//! from their own queue when they come, so a slow or stopped etcd delays no check, no
//! journaling and no unguarded decision. A withdrawal that was held is asked again when any
//! other site's record of its service changes (the watch) and when etcd answers again after
//! it could not be reached; a driver cancels it when its check recovers or an operator
//! drains. While etcd cannot be reached every pending withdrawal is answered
//! [`Answer::Blind`] (and again once it is reachable), and the driver applies
//! `on_unreachable`.

use super::store::{self, StoreError};
use super::{Answer, Published, Rule, Settings};
use crate::journal_handle::now_ms;
use etcd_client::{Client, EventType, WatchOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What a driver asks of the guard.
pub enum Request {
    /// Publish this site's record of a service (replacing the previous one).
    Publish {
        /// The service.
        service: String,
        /// The record.
        record: Published,
    },
    /// A guarded withdrawal: answer on `reply` now and whenever the answer may have changed,
    /// until cancelled or granted.
    Ask {
        /// The service.
        service: String,
        /// Its rule.
        rule: Rule,
        /// The record to publish if granted.
        withdrawn: Published,
        /// The record to publish if held.
        held: Published,
        /// Where the answers go.
        reply: mpsc::UnboundedSender<Answer>,
    },
    /// The withdrawal is no longer wanted (the check recovered, an operator drained).
    Cancel {
        /// The service.
        service: String,
    },
    /// The service was removed: delete its record.
    Forget {
        /// The service.
        service: String,
    },
    /// The daemon stops: revoke the lease (this site's records vanish at once).
    Stop(oneshot::Sender<()>),
}

/// A driver's end of the guard.
#[derive(Clone)]
pub struct FleetHandle {
    requests: mpsc::UnboundedSender<Request>,
    /// `[fleet]`.
    pub settings: Arc<Settings>,
    /// Since when etcd cannot be reached, and why (`None`: it answers).
    blind: Arc<std::sync::Mutex<Option<(i64, String)>>>,
    /// Since when the guard is connected (`None` before its first connection too).
    connected: Arc<std::sync::Mutex<Option<i64>>>,
    /// When the guard started (connecting since).
    started_ms: i64,
}

/// Whether the guard can count the fleet, for `status --json` (`fleet_guard_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardState {
    /// Not connected yet since the start.
    Connecting,
    /// Connected: it counts the fleet.
    Connected,
    /// etcd cannot be reached.
    Blind,
}

/// The fleet guard as fields (`status --json`'s `fleet_guard_state`, beside the prose of
/// [`FleetHandle::status_line`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuardView {
    /// Whether there is a guard (`[fleet]`).
    pub on: bool,
    /// This site's name.
    pub site: Option<String>,
    /// etcd's endpoints.
    pub endpoints: Vec<String>,
    /// Whether it can count the fleet.
    pub state: Option<GuardState>,
    /// Since when it is in that state (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Why it is blind, in words.
    pub reason: Option<String>,
    /// `[fleet] on_unreachable`: what a guarded withdrawal does while blind.
    pub on_unreachable: Option<String>,
}

impl GuardView {
    /// No `[fleet]` section.
    pub fn off() -> GuardView {
        GuardView {
            on: false,
            site: None,
            endpoints: Vec::new(),
            state: None,
            since_ms: None,
            reason: None,
            on_unreachable: None,
        }
    }
}

/// The daemon-wide status line without a `[fleet]` section.
pub const OFF_LINE: &str = "fleet guard: off (no [fleet] section)";

impl FleetHandle {
    /// Send a request (never waits; a guard that ended drops it).
    pub fn send(&self, request: Request) {
        let _ = self.requests.send(request);
    }

    /// Since when etcd cannot be reached, and why (naming the endpoints, as an answer says
    /// it): a driver answers its own withdrawal blind at once rather than wait behind the
    /// guard's attempts to reconnect.
    pub fn blind(&self) -> Option<(i64, String)> {
        self.blind_since()
            .map(|(since, reason)| (since, self.settings.at(&reason)))
    }

    /// Since when etcd cannot be reached, and why.
    fn blind_since(&self) -> Option<(i64, String)> {
        self.blind.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether it can count the fleet, since when, and why not.
    fn seen(&self) -> (GuardState, i64, Option<String>) {
        match self.blind_since() {
            Some((since, reason)) => (GuardState::Blind, since, Some(reason)),
            None => match *self.connected.lock().unwrap_or_else(|p| p.into_inner()) {
                Some(since) => (GuardState::Connected, since, None),
                None => (GuardState::Connecting, self.started_ms, None),
            },
        }
    }

    /// The guard as fields (`status --json`).
    pub fn view(&self) -> GuardView {
        let s = &self.settings;
        let (state, since_ms, reason) = self.seen();
        GuardView {
            on: true,
            site: Some(s.site.clone()),
            endpoints: s.endpoints.clone(),
            state: Some(state),
            since_ms: Some(since_ms),
            reason,
            on_unreachable: Some(s.on_unreachable.name().to_owned()),
        }
    }

    /// The daemon-wide status line: on, as which site, which etcd, and whether it can count
    /// the fleet (reachable, connecting, or blind since when and why).
    pub fn status_line(&self) -> String {
        let s = &self.settings;
        let state = match self.seen() {
            (GuardState::Blind, since, reason) => format!(
                "BLIND since {} ({}); guarded withdrawals {}",
                crate::audit::text::format_time(since),
                reason.unwrap_or_default(),
                match s.on_unreachable {
                    super::OnUnreachable::Hold => "are held (on_unreachable = \"hold\")",
                    super::OnUnreachable::Local =>
                        "are decided locally (on_unreachable = \"local\")",
                }
            ),
            (GuardState::Connected, _, _) => "etcd reachable".to_owned(),
            (GuardState::Connecting, _, _) => "connecting to etcd".to_owned(),
        };
        format!(
            "fleet guard: on, site {}, etcd {}: {state}",
            s.site,
            s.endpoints.join(", ")
        )
    }

    /// Revoke the lease, waiting at most `limit`.
    pub async fn stop(&self, limit: Duration) {
        let (tx, rx) = oneshot::channel();
        self.send(Request::Stop(tx));
        let _ = tokio::time::timeout(limit, rx).await;
    }
}

/// Start the guard's task.
pub fn spawn(settings: Settings) -> FleetHandle {
    let (requests, rx) = mpsc::unbounded_channel();
    let settings = Arc::new(settings);
    let blind = Arc::new(std::sync::Mutex::new(None));
    let connected = Arc::new(std::sync::Mutex::new(None));
    // Blind until it has connected (it cannot count the fleet before): 1, never absent.
    crate::observe::metrics::set("anycastd_fleet_guard_blind", &[], 1.0);
    let guard = Guard {
        connected: connected.clone(),
        shared_blind: blind.clone(),
        settings: settings.clone(),
        connection: None,
        blind: None,
        published: BTreeMap::new(),
        pending: BTreeMap::new(),
        too_small: BTreeSet::new(),
        untallied: BTreeSet::new(),
    };
    tokio::spawn(guard.run(rx));
    FleetHandle {
        requests,
        settings,
        blind,
        connected,
        started_ms: now_ms(),
    }
}

struct Pending {
    rule: Rule,
    withdrawn: Published,
    held: Published,
    reply: mpsc::UnboundedSender<Answer>,
}

struct Connection {
    client: Client,
    lease: i64,
    keeper: etcd_client::LeaseKeeper,
    keepalive: etcd_client::LeaseKeepAliveStream,
    watch: etcd_client::WatchStream,
}

struct Guard {
    /// Since when [`Guard::connection`] is set, for status.
    connected: Arc<std::sync::Mutex<Option<i64>>>,
    /// [`Guard::blind`], for the drivers.
    shared_blind: Arc<std::sync::Mutex<Option<(i64, String)>>>,
    settings: Arc<Settings>,
    connection: Option<Connection>,
    /// Since when etcd cannot be reached, and why.
    blind: Option<(i64, String)>,
    published: BTreeMap<String, Published>,
    pending: BTreeMap<String, Pending>,
    /// Services whose fleet was found smaller than their minimum (warned once).
    too_small: BTreeSet<String>,
    /// Services whose sites changed since their gauges were counted: counted again at the
    /// next [`TALLY`] tick, once however many records changed (one read per change made the
    /// reads grow with the square of the fleet: 1,900 a second at 100 sites x 10 services).
    untallied: BTreeSet<String>,
}

/// How often the sites of a service whose records changed are counted again for the metrics.
const TALLY: Duration = Duration::from_secs(1);

/// How often an unreachable etcd is tried again.
const RECONNECT: Duration = Duration::from_secs(1);

impl Guard {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let settings = self.settings.clone();
        self.reconnect().await;
        let keepalive_every = (self.settings.lease / 3).max(Duration::from_millis(300));
        let mut keepalive = tokio::time::interval(keepalive_every);
        let mut retry = tokio::time::interval(RECONNECT);
        let mut tally = tokio::time::interval(TALLY);
        tally.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    if self.handle(request).await {
                        return;
                    }
                }
                _ = keepalive.tick(), if self.connection.is_some() => {
                    self.keep_alive().await;
                }
                _ = retry.tick(), if self.connection.is_none() => {
                    self.reconnect().await;
                }
                _ = tally.tick(), if !self.untallied.is_empty() => {
                    for service in std::mem::take(&mut self.untallied) {
                        self.tally(&service).await;
                    }
                }
                message = watch_message(&mut self.connection, &settings) => {
                    match message {
                        Ok(services) => {
                            // Each service once, however many of its records changed.
                            let services: BTreeSet<String> = services.into_iter().collect();
                            for service in services {
                                self.changed(&service).await;
                            }
                        }
                        Err(e) => self.lost(e).await,
                    }
                }
            }
        }
    }

    /// Handle one request; `true`: stop.
    async fn handle(&mut self, request: Request) -> bool {
        match request {
            Request::Publish { service, record } => {
                self.published.insert(service.clone(), record.clone());
                if let Some(c) = &mut self.connection {
                    let result =
                        store::publish(&mut c.client, &self.settings, &service, &record, c.lease)
                            .await;
                    if let Err(e) = result {
                        self.lost(e).await;
                    } else {
                        self.untallied.insert(service);
                    }
                }
            }
            Request::Ask {
                service,
                rule,
                withdrawn,
                held,
                reply,
            } => {
                // Until an answer lets it go, the site announces the service although it is
                // unhealthy: held is its true state, also for a reconnection that republishes
                // every record before asking again (the record of its healthy past would say
                // "announcing" for that moment).
                self.published.insert(service.clone(), held.clone());
                self.pending.insert(
                    service.clone(),
                    Pending {
                        rule,
                        withdrawn,
                        held,
                        reply,
                    },
                );
                self.ask(&service).await;
            }
            Request::Cancel { service } => {
                self.pending.remove(&service);
            }
            Request::Forget { service } => {
                self.pending.remove(&service);
                self.published.remove(&service);
                // After any tally of it in this task: its count is not shown again.
                crate::observe::metrics::forget_service_gauge("anycastd_fleet_sites", &service);
                if let Some(c) = &mut self.connection {
                    let key = super::site_key(&self.settings.prefix, &service, &self.settings.site);
                    let _ = store::timed("forgetting", c.client.delete(key, None)).await;
                }
            }
            Request::Stop(done) => {
                if let Some(c) = &mut self.connection {
                    match store::timed("revoking the lease", c.client.lease_revoke(c.lease)).await {
                        Ok(_) => tracing::info!(
                            site = %self.settings.site,
                            "The fleet guard revoked site \"{}\"'s lease: its records are gone from etcd, the other sites count it as gone.",
                            self.settings.site
                        ),
                        Err(e) => tracing::warn!(
                            site = %self.settings.site,
                            error = %e,
                            "The fleet guard could not revoke site \"{}\"'s lease ({e}): its records stay in etcd until the lease ends.",
                            self.settings.site
                        ),
                    }
                } else {
                    tracing::info!(
                        site = %self.settings.site,
                        "The fleet guard cannot reach etcd at the stop: site \"{}\"'s records stay in etcd until its lease ends.",
                        self.settings.site
                    );
                }
                self.connection = None;
                let _ = done.send(());
                return true;
            }
        }
        false
    }

    /// Ask (again) the pending withdrawal of `service`, and tell its driver.
    async fn ask(&mut self, service: &str) {
        let Some(pending) = self.pending.get(service) else {
            return;
        };
        let answer = match (&mut self.connection, &self.blind) {
            (Some(c), _) => {
                let result = store::ask(
                    &mut c.client,
                    &self.settings,
                    service,
                    pending.rule,
                    &pending.withdrawn,
                    &pending.held,
                    c.lease,
                )
                .await;
                match result {
                    Ok(answer) => answer,
                    Err(e) => {
                        self.lost(e).await;
                        return;
                    }
                }
            }
            (None, Some((since_ms, reason))) => Answer::Blind {
                since_ms: *since_ms,
                reason: self.settings.at(reason),
            },
            (None, None) => Answer::Blind {
                since_ms: now_ms(),
                reason: self.settings.at("not connected yet"),
            },
        };
        if let Answer::Held(count) = &answer {
            if count.sites < count.needed && self.too_small.insert(service.to_owned()) {
                tracing::warn!(
                    service = %service,
                    sites = count.sites,
                    needed = count.needed,
                    "The fleet of service \"{service}\" has {} site(s), fewer than the {} that must keep announcing it: the fleet guard holds every withdrawal of it by health.",
                    count.sites,
                    count.needed
                );
            }
        }
        let record = match &answer {
            Answer::Granted(_) => Some(pending.withdrawn.clone()),
            Answer::Held(_) => Some(pending.held.clone()),
            Answer::Blind { .. } => None,
        };
        if let Some(record) = record {
            self.published.insert(service.to_owned(), record);
        }
        let granted = matches!(answer, Answer::Granted(_));
        let _ = pending.reply.send(answer);
        if granted {
            self.pending.remove(service);
        }
        self.untallied.insert(service.to_owned());
    }

    /// Another site's record of `service` changed: a held withdrawal may go now.
    async fn changed(&mut self, service: &str) {
        if self.pending.contains_key(service) {
            self.ask(service).await;
        } else if self.published.contains_key(service) {
            self.untallied.insert(service.to_owned());
        }
    }

    /// Count the sites of `service` by state for the metrics.
    async fn tally(&mut self, service: &str) {
        let Some(c) = &mut self.connection else {
            return;
        };
        if !self.published.contains_key(service) {
            // Forgotten (no longer guarded): its gauges are gone, not counted again.
            return;
        }
        if let Ok(sites) = store::sites(&mut c.client, &self.settings.prefix, service).await {
            let counts = store::tally(&sites);
            for state in super::SiteState::ALL {
                crate::observe::metrics::set(
                    "anycastd_fleet_sites",
                    &[("service", service), ("state", state.name())],
                    f64::from(counts.get(&state).copied().unwrap_or(0)),
                );
            }
        }
    }

    async fn keep_alive(&mut self) {
        let Some(c) = &mut self.connection else {
            return;
        };
        let sent = store::timed("keeping the lease alive", c.keeper.keep_alive()).await;
        let result = match sent {
            Ok(()) => match store::timed("keeping the lease alive", c.keepalive.message()).await {
                Ok(Some(r)) if r.ttl() > 0 => Ok(()),
                Ok(Some(_)) => Err(StoreError("the lease expired".into())),
                Ok(None) => Err(StoreError("the lease's keep-alive stream ended".into())),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.lost(e).await;
        }
    }

    /// etcd stopped answering: blind until it answers again.
    async fn lost(&mut self, error: StoreError) {
        self.connection = None;
        *self.connected.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let since = match &self.blind {
            Some((since, _)) => *since,
            None => {
                tracing::warn!(
                    error = %error,
                    on_unreachable = self.settings.on_unreachable.name(),
                    "The fleet guard is blind: {}; guarded withdrawals {}.",
                    self.settings.at(&error.0),
                    match self.settings.on_unreachable {
                        super::OnUnreachable::Hold => "are held",
                        super::OnUnreachable::Local => "are decided locally",
                    }
                );
                now_ms()
            }
        };
        self.blind = Some((since, error.0.clone()));
        *self.shared_blind.lock().unwrap_or_else(|p| p.into_inner()) = self.blind.clone();
        crate::observe::metrics::set("anycastd_fleet_guard_blind", &[], 1.0);
        let services: Vec<String> = self.pending.keys().cloned().collect();
        for service in services {
            if let Some(p) = self.pending.get(&service) {
                let _ = p.reply.send(Answer::Blind {
                    since_ms: since,
                    reason: self.settings.at(&error.0),
                });
            }
        }
    }

    /// Connect, take a new lease, publish every record under it, watch the fleet, and ask
    /// every pending withdrawal again.
    async fn reconnect(&mut self) {
        match self.connect().await {
            Ok(connection) => {
                self.connection = Some(connection);
                *self.connected.lock().unwrap_or_else(|p| p.into_inner()) = Some(now_ms());
                if let Some((since, _)) = self.blind.take() {
                    tracing::info!(
                        "The fleet guard sees again: etcd answers (blind since {}).",
                        crate::audit::text::format_time(since)
                    );
                } else {
                    tracing::info!(
                        site = %self.settings.site,
                        "The fleet guard is connected to etcd as site \"{}\".",
                        self.settings.site
                    );
                }
                crate::observe::metrics::set("anycastd_fleet_guard_blind", &[], 0.0);
                *self.shared_blind.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let pending: Vec<String> = self.pending.keys().cloned().collect();
                for service in pending {
                    self.ask(&service).await;
                }
            }
            Err(e) => {
                if self.blind.is_none() {
                    self.lost(e).await;
                } else if let Some(blind) = &mut self.blind {
                    blind.1 = e.0;
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<Connection, StoreError> {
        let mut client = store::connect(&self.settings).await?;
        let ttl = self.settings.lease.as_secs().max(1) as i64;
        let lease = store::timed("taking a lease", client.lease_grant(ttl, None))
            .await?
            .id();
        let (keeper, keepalive) =
            store::timed("keeping the lease alive", client.lease_keep_alive(lease)).await?;
        for (service, record) in &self.published {
            store::publish(&mut client, &self.settings, service, record, lease).await?;
        }
        let watch = store::timed(
            "watching the fleet",
            client.watch(
                format!("{}/", self.settings.prefix),
                Some(WatchOptions::new().with_prefix()),
            ),
        )
        .await?;
        Ok(Connection {
            client,
            lease,
            keeper,
            keepalive,
            watch,
        })
    }
}

/// The services whose records another site changed, from the next watch message (pending
/// forever without a connection).
async fn watch_message(
    connection: &mut Option<Connection>,
    settings: &Settings,
) -> Result<Vec<String>, StoreError> {
    let Some(c) = connection else {
        return std::future::pending().await;
    };
    let message = c
        .watch
        .message()
        .await
        .map_err(|e| StoreError(format!("watching the fleet: {}", store::short(&e))))?;
    let Some(message) = message else {
        return Err(StoreError("the fleet's watch ended".into()));
    };
    if message.canceled() {
        return Err(StoreError(format!(
            "the fleet's watch was cancelled: {}",
            message.cancel_reason()
        )));
    }
    Ok(message
        .events()
        .iter()
        .filter(|e| matches!(e.event_type(), EventType::Put | EventType::Delete))
        .filter_map(|e| e.kv().and_then(|kv| kv.key_str().ok()))
        .filter_map(|key| {
            let (service, site) = service_and_site(key, &settings.prefix)?;
            // This site's own writes change nothing it has not counted.
            (site != settings.site).then_some(service)
        })
        .collect())
}

/// The service and site of a key `PREFIX/SERVICE/sites/SITE`.
fn service_and_site(key: &str, prefix: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
    let (service, site) = rest.split_once("/sites/")?;
    Some((service.to_owned(), site.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_key_names_its_service_and_site() {
        assert_eq!(
            service_and_site("/anycastd/dns/sites/ams1", "/anycastd"),
            Some(("dns".into(), "ams1".into()))
        );
        assert_eq!(service_and_site("/anycastd/dns/other", "/anycastd"), None);
        assert_eq!(service_and_site("/other/dns/sites/a", "/anycastd"), None);
    }
}
