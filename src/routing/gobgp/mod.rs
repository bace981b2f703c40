//! GoBGP as a [`Backend`]: gobgpd driven through its gRPC API v3 ([`api`], service
//! `apipb.GobgpApi` as gobgpd 3.x serves it; no `gobgp` CLI). A prefix is announced with
//! `AddPath` to the global RIB (IPv4 or IPv6 unicast by its family, origin IGP, next hop
//! 0.0.0.0 or ::, as `gobgp global rib add` builds a local network; a graded announcement
//! adds an AS_PATH of gobgpd's global AS, a MED and communities, [`api::with_attributes`],
//! and a change of them is an `AddPath` of the same path, which replaces it), withdrawn with
//! `DeletePath` of that path's UUID, read back with `ListPath` of the global table, and shown
//! (`status`) from the adj-out toward each established neighbour (`ListPeer`, `ListPath`
//! `ADJ_OUT`).
//!
//! The backend's instance is the API address (`HOST:PORT`); its one table is the global RIB
//! (a prefix has no VRF).
//!
//! Which paths are anycastd's: every path it adds carries the path identifier
//! [`OWN_IDENTIFIER`] (the NLRI's ADD-PATH identifier, which gobgpd keeps and lists with the
//! path but sends to no neighbour: a neighbour without ADD-PATH gets no identifier, one with
//! it gets gobgpd's own local identifier). A path without it (added with `gobgp global rib
//! add`, which gives 0, or by another program) is not read as installed and never deleted,
//! also when it is for the same prefix as a service (gobgpd keeps both paths apart and
//! advertises its best; withdrawing the service's path leaves the other). Because the mark is
//! in gobgpd, not in anycastd, a restarted anycastd finds its paths again: the start-up
//! reconciliation keeps what the journal says was announced, without a flap.
//!
//! A restart of gobgpd: its paths live in its memory only, so a new gobgpd has none.
//! anycastd holds a `WatchEvent` stream open (peer events, not looked at); it ends when the
//! process does. The stream is re-opened every [`REOPEN`] until the API answers again, and
//! each time it opens anew the backend's [`Backend::incarnation`] changes: the writer notices
//! it at its next look ([`super::writer::WATCH_INTERVAL`]), journals a routing restart and
//! re-announces.

pub mod api;
pub mod config;
pub mod kind;

pub use kind::KIND;

use super::{Backend, BackendId, Change, Installed, Place, PrefixKey, Shown, Snapshot};
use crate::bgp::Attributes;
use api::{ApiError, Client, Family};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// The API address used when a prefix names none (gobgpd's `--api-hosts` default is
/// `:50051`, every address).
pub const DEFAULT_API: &str = "127.0.0.1:50051";
/// The path identifier of every path anycastd adds: `ANYC` in ASCII.
pub const OWN_IDENTIFIER: u32 = 0x414e_5943;
/// How often the event stream is re-opened while gobgpd's API does not answer.
pub const REOPEN: Duration = Duration::from_millis(200);

/// How every gobgpd is reached (`[gobgp]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Time limit of one API call (`timeout`).
    pub timeout: Duration,
    /// How often the writer reads gobgpd afresh and repairs drift (`reconcile_interval`).
    pub reconcile_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(30),
        }
    }
}

/// Whether `text` is an API address anycastd accepts: `IP:PORT` (an IPv6 address in
/// brackets), port 1-65535.
pub fn valid_api(text: &str) -> bool {
    text.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.port() != 0)
}

/// The prefixes of anycastd's paths in gobgpd's global RIB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GobgpState {
    /// Their prefixes.
    pub own: BTreeSet<IpNet>,
    /// What those not announced plain carry, as gobgpd lists their attributes.
    pub attributes: BTreeMap<IpNet, Attributes>,
    /// The unicast families (false: IPv4, true: IPv6) whose table gobgpd's global RIB does
    /// not have (`[[global.afi-safis]]` lists others only): gobgpd accepts an `AddPath` of
    /// such a prefix and keeps nothing, so anycastd refuses it itself, for that prefix alone.
    pub missing_families: Vec<bool>,
}

/// Whether gobgpd refused a call because its global RIB has no table of the family.
fn family_missing(error: &ApiError) -> bool {
    matches!(error, ApiError::Refused { message, .. }
        if message.contains("address family") && message.contains("not supported"))
}

fn family_name(v6: bool) -> &'static str {
    if v6 {
        "ipv6-unicast"
    } else {
        "ipv4-unicast"
    }
}

impl Installed for GobgpState {
    fn has_table(&self, place: &Place) -> bool {
        place.name().is_none()
    }

    fn contains(&self, place: &Place, prefix: &IpNet) -> bool {
        place.name().is_none() && self.own.contains(prefix)
    }

    fn attributes(&self, place: &Place, prefix: &IpNet) -> Attributes {
        place
            .name()
            .is_none()
            .then(|| self.attributes.get(prefix).cloned())
            .flatten()
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Snapshot {
        let mut tables = BTreeMap::new();
        tables.insert(Place::default(), self.own.clone());
        Snapshot {
            tables,
            attributes: self
                .attributes
                .iter()
                .map(|(net, a)| ((Place::default(), *net), a.clone()))
                .collect(),
        }
    }
}

/// Whether a new gobgpd process answered since the last look ([`Backend::incarnation`]).
#[derive(Debug, Default)]
struct Incarnation {
    /// The watch task runs.
    started: AtomicBool,
    /// The event stream is open (gobgpd answers).
    up: AtomicBool,
    /// How many times it was opened.
    count: AtomicU64,
}

/// One gobgpd, reached through its gRPC API.
#[derive(Debug, Clone)]
pub struct Gobgp {
    id: BackendId,
    settings: Settings,
    client: Arc<OnceLock<Result<Client, ApiError>>>,
    incarnation: Arc<Incarnation>,
}

impl Gobgp {
    /// The backend of `id` (its instance: the API address).
    pub fn new(id: &BackendId, settings: &Settings) -> Gobgp {
        Gobgp {
            id: id.clone(),
            settings: settings.clone(),
            client: Arc::new(OnceLock::new()),
            incarnation: Arc::new(Incarnation::default()),
        }
    }

    /// The API address.
    pub fn endpoint(&self) -> &str {
        &self.id.instance
    }

    /// The client, made at the first call (within the runtime).
    fn client(&self) -> Result<&Client, ApiError> {
        self.client
            .get_or_init(|| Client::new(&self.id.instance, self.settings.timeout))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// anycastd's paths in the global RIB of the families of `prefixes` (both when `None`).
    async fn own_paths(&self, prefixes: Option<&[IpNet]>) -> Result<GobgpState, ApiError> {
        let client = self.client()?;
        let mut state = GobgpState::default();
        for v6 in [false, true] {
            if prefixes.is_some_and(|ps| !ps.iter().any(|p| p.addr().is_ipv6() == v6)) {
                continue;
            }
            let destinations = match client
                .list_path(api::TABLE_GLOBAL, "", family(v6), &[])
                .await
            {
                Ok(d) => d,
                Err(e) if family_missing(&e) => {
                    state.missing_families.push(v6);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for path in destinations.into_iter().flat_map(|d| d.paths) {
                if path.identifier != OWN_IDENTIFIER || path.is_withdraw {
                    continue;
                }
                if let Some(prefix) = api::prefix_of(&path) {
                    state.own.insert(prefix);
                    let attributes = api::attributes_of(&path);
                    if !attributes.is_plain() {
                        state.attributes.insert(prefix, attributes);
                    }
                }
            }
        }
        Ok(state)
    }

    /// Apply one change.
    async fn change(&self, installed: &GobgpState, change: &Change) -> Result<(), ApiError> {
        let client = self.client()?;
        let v6 = change.prefix.addr().is_ipv6();
        if change.announce && installed.missing_families.contains(&v6) {
            // gobgpd itself accepts such an AddPath and keeps nothing; its ListPath of the
            // family is what refuses.
            return Err(ApiError::Refused {
                what: "ListPath",
                message: format!(
                    "its global RIB has no {} table (address family: {} not supported); add it to [[global.afi-safis]] in gobgpd's configuration",
                    family_name(v6),
                    family_name(v6)
                ),
            });
        }
        if change.announce {
            // A prepend repeats gobgpd's global AS. An AddPath of the same prefix and path
            // identifier replaces the path in place: the neighbours get an update, no
            // withdrawal.
            let local_as =
                if change.attributes.as_path_prepend > 0 {
                    match client.local_as().await? {
                        0 => return Err(ApiError::Refused {
                            what: "GetBgp",
                            message:
                                "gobgpd has no global AS to prepend (is its [global.config] set?)"
                                    .into(),
                        }),
                        asn => asn,
                    }
                } else {
                    0
                };
            let path = api::with_attributes(
                api::local_path(&change.prefix, OWN_IDENTIFIER),
                &change.attributes,
                local_as,
            );
            client.add_path(path).await?;
            return Ok(());
        }
        if installed.own.contains(&change.prefix) {
            client
                .delete_path(api::local_path(&change.prefix, OWN_IDENTIFIER))
                .await?;
        }
        Ok(())
    }

    /// Keep the event stream open; count each time it opens anew. Ends (closing the
    /// stream) once the backend it serves is gone (its writer stopped at a reload).
    async fn watch(
        client: Client,
        incarnation: Weak<Incarnation>,
        mut stream: Option<tonic::Streaming<api::Empty>>,
    ) {
        loop {
            if let Some(mut open) = stream.take() {
                let mut alive = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        message = open.message() => match message {
                            Ok(Some(_)) => {}
                            _ => break,
                        },
                        _ = alive.tick() => {
                            if incarnation.strong_count() == 0 {
                                return;
                            }
                        }
                    }
                }
                let Some(incarnation) = incarnation.upgrade() else {
                    return;
                };
                incarnation.up.store(false, Ordering::SeqCst);
                tracing::info!(
                    endpoint = client.endpoint(),
                    "gobgpd's API at {} closed its event stream: gobgpd stopped or restarted",
                    client.endpoint()
                );
            }
            tokio::time::sleep(REOPEN).await;
            let Some(incarnation) = incarnation.upgrade() else {
                return;
            };
            if let Ok(open) = client.watch().await {
                incarnation.count.fetch_add(1, Ordering::SeqCst);
                incarnation.up.store(true, Ordering::SeqCst);
                tracing::info!(
                    endpoint = client.endpoint(),
                    "gobgpd's API at {} answers (event stream open)",
                    client.endpoint()
                );
                stream = Some(open);
            }
        }
    }
}

fn family(v6: bool) -> Family {
    Family {
        afi: if v6 { api::AFI_IP6 } else { api::AFI_IP },
        safi: api::SAFI_UNICAST,
    }
}

/// The neighbours whose session is established, with whether each has IPv4 and IPv6
/// unicast enabled.
fn established(peers: &[api::Peer]) -> Vec<(String, bool, bool)> {
    peers
        .iter()
        .filter_map(|peer| {
            let state = peer.state.as_ref()?;
            if state.session_state != api::SESSION_ESTABLISHED {
                return None;
            }
            let address = Some(state.neighbor_address.clone())
                .filter(|a| !a.is_empty())
                .or_else(|| peer.conf.as_ref().map(|c| c.neighbor_address.clone()))?;
            let has = |afi: i32| {
                peer.afi_safis.iter().any(|a| {
                    [a.state.as_ref(), a.config.as_ref()]
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c.enabled
                                && c.family
                                    .as_ref()
                                    .is_some_and(|f| f.afi == afi && f.safi == api::SAFI_UNICAST)
                        })
                })
            };
            Some((address, has(api::AFI_IP), has(api::AFI_IP6)))
        })
        .collect()
}

impl Backend for Gobgp {
    type Installed = GobgpState;
    type Error = ApiError;

    fn id(&self) -> &BackendId {
        &self.id
    }

    async fn read(&self) -> Result<GobgpState, ApiError> {
        self.own_paths(None).await
    }

    /// One call per change: an error then names its prefix alone.
    fn batches(&self, _: &GobgpState, changes: &[Change]) -> Vec<std::ops::Range<usize>> {
        (0..changes.len()).map(|i| i..i + 1).collect()
    }

    async fn apply(
        &self,
        installed: &GobgpState,
        changes: &[Change],
        _withdrawing: &[PrefixKey],
    ) -> Result<(), ApiError> {
        for change in changes {
            self.change(installed, change).await?;
        }
        Ok(())
    }

    async fn inspect(&self, prefixes: &[PrefixKey]) -> Result<Vec<Shown>, ApiError> {
        let nets: Vec<IpNet> = prefixes.iter().map(|(_, p)| *p).collect();
        let client = self.client()?;
        // anycastd's paths, and whether gobgpd takes each for valid (a next hop it can use;
        // not necessarily its best: a path added by hand may win, and is then what the
        // neighbours get).
        let mut valid: BTreeSet<IpNet> = BTreeSet::new();
        let mut own: BTreeSet<IpNet> = BTreeSet::new();
        // What anycastd's own path of each prefix carries (installed).
        let mut own_attributes: BTreeMap<IpNet, Attributes> = BTreeMap::new();
        // What gobgpd's best path of each prefix carries (before export policies, and
        // before an EBGP session prepends its AS).
        let mut best: BTreeMap<IpNet, Attributes> = BTreeMap::new();
        for v6 in [false, true] {
            let wanted: Vec<IpNet> = nets
                .iter()
                .copied()
                .filter(|p| p.addr().is_ipv6() == v6)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let destinations = match client
                .list_path(api::TABLE_GLOBAL, "", family(v6), &wanted)
                .await
            {
                Ok(d) => d,
                Err(e) if family_missing(&e) => continue,
                Err(e) => return Err(e),
            };
            for d in destinations {
                for path in d.paths {
                    let Some(prefix) = api::prefix_of(&path) else {
                        continue;
                    };
                    if path.best && !path.is_withdraw {
                        best.insert(prefix, api::attributes_of(&path));
                    }
                    if path.identifier == OWN_IDENTIFIER && !path.is_withdraw {
                        own.insert(prefix);
                        own_attributes.insert(prefix, api::attributes_of(&path));
                        if !path.is_nexthop_invalid {
                            valid.insert(prefix);
                        }
                    }
                }
            }
        }
        // What each established neighbour is sent.
        let mut sent: BTreeMap<IpNet, usize> = BTreeMap::new();
        for (peer, v4, v6) in established(&client.list_peer().await?) {
            for (is_v6, enabled) in [(false, v4), (true, v6)] {
                let wanted: Vec<IpNet> = nets
                    .iter()
                    .copied()
                    .filter(|p| p.addr().is_ipv6() == is_v6)
                    .collect();
                if !enabled || wanted.is_empty() {
                    continue;
                }
                let out = client
                    .list_path(api::TABLE_ADJ_OUT, &peer, family(is_v6), &wanted)
                    .await?;
                let mut seen = BTreeSet::new();
                for path in out.iter().flat_map(|d| &d.paths) {
                    if let Some(prefix) = api::prefix_of(path) {
                        if !path.is_withdraw && seen.insert(prefix) {
                            *sent.entry(prefix).or_default() += 1;
                        }
                    }
                }
            }
        }
        Ok(nets
            .iter()
            .map(|p| Shown {
                advertised: best.get(p).cloned(),
                installed: own_attributes.get(p).cloned(),
                configured: own.contains(p),
                valid: valid.contains(p),
                established_peers: sent.get(p).copied().unwrap_or(0),
            })
            .collect())
    }

    fn missing_table(&self, place: &Place) -> ApiError {
        ApiError::NoTable {
            endpoint: self.endpoint().to_owned(),
            place: place.name().unwrap_or("default").to_owned(),
        }
    }

    fn not_applied(&self, announce: bool) -> ApiError {
        ApiError::NotApplied {
            endpoint: self.endpoint().to_owned(),
            announce,
        }
    }

    /// gobgpd has no file of its own to watch: its restarts are told by
    /// [`Backend::incarnation`].
    fn runtime_file(&self) -> Result<Option<super::RuntimeFile>, super::RuntimeFileUnknown> {
        Ok(None)
    }

    fn known_while_down(&self, error: &ApiError, _key: &PrefixKey) -> Option<String> {
        matches!(error, ApiError::Unreachable { .. }).then(|| {
            "a gobgpd that is not running does not announce it when it starts (it keeps paths added over its API in memory only)".to_owned()
        })
    }

    async fn incarnation(&self) -> Option<u64> {
        let client = self.client().ok()?;
        if !self.incarnation.started.swap(true, Ordering::SeqCst) {
            // The first look opens the stream itself, so that a gobgpd that answers at start
            // is the first incarnation, not a restart.
            let first = client.watch().await.ok();
            if first.is_some() {
                self.incarnation.count.store(1, Ordering::SeqCst);
                self.incarnation.up.store(true, Ordering::SeqCst);
            }
            tracing::info!(
                backend = %self.id,
                "restart detection: a restart of gobgpd is noticed when its API's event stream (WatchEvent) ends and the API answers again"
            );
            crate::observe::metrics::set(
                "anycastd_routing_restart_detection",
                &[
                    ("backend", self.id.kind.name()),
                    ("endpoint", &self.id.instance),
                ],
                1.0,
            );
            tokio::spawn(Self::watch(
                client.clone(),
                Arc::downgrade(&self.incarnation),
                first,
            ));
        }
        self.incarnation
            .up
            .load(Ordering::SeqCst)
            .then(|| self.incarnation.count.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_addresses() {
        for ok in ["127.0.0.1:50051", "[::1]:50051", "192.0.2.1:1"] {
            assert!(valid_api(ok), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1",
            "localhost:50051",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "::1:50051",
            "http://127.0.0.1:50051",
            "unix:///run/gobgpd.sock",
        ] {
            assert!(!valid_api(bad), "{bad}");
        }
    }

    #[test]
    fn established_neighbours_and_their_families() {
        let peer = |address: &str, state: i32, afis: &[i32]| api::Peer {
            conf: Some(api::PeerConf {
                neighbor_address: address.into(),
            }),
            state: Some(api::PeerState {
                neighbor_address: address.into(),
                session_state: state,
            }),
            afi_safis: afis
                .iter()
                .map(|&afi| api::AfiSafi {
                    config: Some(api::AfiSafiConfig {
                        family: Some(Family {
                            afi,
                            safi: api::SAFI_UNICAST,
                        }),
                        enabled: true,
                    }),
                    state: None,
                })
                .collect(),
        };
        let peers = [
            peer("192.0.2.14", api::SESSION_ESTABLISHED, &[api::AFI_IP]),
            peer("2001:db8::2", api::SESSION_ESTABLISHED, &[api::AFI_IP6]),
            peer("192.0.2.18", 3, &[api::AFI_IP]),
        ];
        assert_eq!(
            established(&peers),
            [
                ("192.0.2.14".to_owned(), true, false),
                ("2001:db8::2".to_owned(), false, true)
            ]
        );
    }
}
