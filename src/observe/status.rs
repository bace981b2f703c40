//! `anycastd status`: each service's state and, per prefix, whether its routing daemon has
//! it *configured* (for example a `network` line in FRR's running config) and whether it is
//! *advertised* (a valid best path and at least one established peer it goes to). The two
//! differ when the daemon finds no route for the prefix (FRR's `bgp network import-check`)
//! or no session is up; showing them apart is the point. The words of a place, and of a
//! prefix without peers, are its backend kind's ([`crate::routing::Kind`]).

use crate::config::Config;
use crate::routing::{BackendId, PrefixKey, Shown};
use anycastd_journal::wire;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What the daemon (or the journal) knows of a service's state.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// Service name.
    pub name: String,
    /// State.
    pub state: wire::State,
    /// Held withdrawn by flap damping.
    #[serde(default)]
    pub suppressed: bool,
    /// Since when (ms since the epoch).
    pub since_ms: i64,
    /// Why it is in this state.
    pub cause: String,
}

/// A set of BGP attributes as fields (`status --json`): what a level adds to the plain
/// route. Communities in RFC 1997 / RFC 8092 text, sorted.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AttributesView {
    /// How many times the local AS is prepended (0: none).
    pub as_path_prepend: u8,
    /// The MULTI_EXIT_DISC set (`None`: the routing daemon's own).
    #[serde(default)]
    pub med: Option<u32>,
    /// Communities added (`65000:666`, `65535:0`).
    #[serde(default)]
    pub communities: Vec<String>,
    /// Large communities added (`65000:1:666`).
    #[serde(default)]
    pub large_communities: Vec<String>,
}

impl From<&crate::bgp::Attributes> for AttributesView {
    fn from(a: &crate::bgp::Attributes) -> AttributesView {
        let a = a.clone().normalized();
        AttributesView {
            as_path_prepend: a.as_path_prepend,
            med: a.med,
            communities: a.communities.iter().map(ToString::to_string).collect(),
            large_communities: a
                .large_communities
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

impl AttributesView {
    /// The level announcing with these attributes amounts to: `normal` (the plain route),
    /// `graceful-shutdown` (RFC 8326's 65535:0 among them), else `de-preferred`.
    pub fn level_name(&self) -> &'static str {
        if self.communities.iter().any(|c| c == "65535:0") {
            "graceful-shutdown"
        } else if *self == AttributesView::default() {
            "normal"
        } else {
            "de-preferred"
        }
    }

    /// In words: `de-preferred (as-path +3, MED 1000)`, `normal (plain)`.
    fn text(&self) -> String {
        let mut words = Vec::new();
        if self.as_path_prepend > 0 {
            words.push(format!("as-path +{}", self.as_path_prepend));
        }
        if let Some(med) = self.med {
            words.push(format!("MED {med}"));
        }
        for (noun, list) in [
            ("communit", &self.communities),
            ("large communit", &self.large_communities),
        ] {
            if !list.is_empty() {
                let end = if list.len() == 1 { "y" } else { "ies" };
                words.push(format!("{noun}{end} {}", list.join(" ")));
            }
        }
        if words.is_empty() {
            words.push("plain".into());
        }
        format!("{} ({})", self.level_name(), words.join(", "))
    }
}

/// The level a service's prefixes are wanted at, as fields (`status --json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LevelView {
    /// `normal`, `de-preferred`, `graceful-shutdown` or `withdrawn`.
    pub name: String,
    /// What the announcement carries beyond the plain route (`None` when withdrawn).
    #[serde(default)]
    pub attributes: Option<AttributesView>,
    /// When a drain's grace ends (ms since the epoch), while one runs.
    #[serde(default)]
    pub grace_end_ms: Option<i64>,
    /// The same, RFC 3339.
    #[serde(default)]
    pub grace_end: Option<String>,
}

/// One check as its driver sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CheckView {
    /// Check name.
    pub name: String,
    /// Its kind (`cabourotte`, `exec`, `http`, `tcp`, `dns`).
    #[serde(default)]
    pub kind: String,
    /// A shadow check: shown, never part of the verdict.
    #[serde(default)]
    pub shadow: bool,
    /// The VRF it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Its latest result: `pass`, `fail` or `pending`.
    pub result: String,
    /// Why it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when it shows this result (ms), if it has shown any.
    #[serde(default)]
    pub since_ms: Option<i64>,
    /// Time of its latest result (ms).
    #[serde(default)]
    pub last_ms: Option<i64>,
    /// Consecutive results equal to the latest.
    pub results_since_change: u64,
    /// Its poll interval (ms).
    pub interval_ms: u64,
}

/// A service's flap damping now.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DampingView {
    /// The penalty decayed to now.
    pub penalty: u64,
    /// Whether damping keeps the service withdrawn.
    pub suppressed: bool,
    /// Since when (ms).
    #[serde(default)]
    pub suppressed_since_ms: Option<i64>,
    /// When the suppression ends at the latest (ms): the penalty decays below `reuse`, or
    /// `max_suppress` is reached.
    #[serde(default)]
    pub reuse_at_ms: Option<i64>,
}

/// One service in detail, from its driver.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Service name.
    pub name: String,
    /// State.
    pub state: wire::State,
    /// Since when (ms).
    pub since_ms: i64,
    /// The last transition's cause, in words.
    pub cause: String,
    /// Whether its prefixes should be announced now.
    pub desired_announced: bool,
    /// Healthy verdicts needed to announce.
    pub rise: u32,
    /// Unhealthy verdicts needed to withdraw.
    pub fall: u32,
    /// Checks that must pass (0: all).
    #[serde(default)]
    pub require: u32,
    /// The interval while confirming (ms), when configured.
    #[serde(default)]
    pub fast_interval_ms: Option<u64>,
    /// Consecutive healthy verdicts.
    pub healthy_streak: u32,
    /// Consecutive unhealthy verdicts.
    pub unhealthy_streak: u32,
    /// Its checks.
    pub checks: Vec<CheckView>,
    /// Flap damping, when configured.
    #[serde(default)]
    pub damping: Option<DampingView>,
    /// The level its prefixes are wanted at, in words with the attributes
    /// (`de-preferred (as-path +3, MED 1000)`); `None` from a daemon before graded
    /// announcements.
    #[serde(default)]
    pub wanted_level: Option<String>,
    /// The same as fields; `None` from a daemon before this field.
    #[serde(default)]
    pub level: Option<LevelView>,
}

impl Snapshot {
    /// What a state view alone tells (a service whose driver does not answer, or the last
    /// journaled state when no daemon runs): no rules or counters (`rise` 0, which no
    /// configured service has, says so).
    pub fn from_view(view: &ServiceView) -> Snapshot {
        Snapshot {
            name: view.name.clone(),
            state: view.state.clone(),
            since_ms: view.since_ms,
            cause: view.cause.clone(),
            desired_announced: anycastd_fsm::State::from(&view.state).announces()
                && !view.suppressed,
            rise: 0,
            fall: 0,
            require: 0,
            fast_interval_ms: None,
            healthy_streak: 0,
            unhealthy_streak: 0,
            checks: Vec::new(),
            damping: None,
            wanted_level: None,
            level: None,
        }
    }
}

impl PrefixStatus {
    /// Where it goes in its routing daemon (whichever of `protocol` and `vrf` is set).
    pub fn place(&self) -> Option<&str> {
        self.protocol.as_deref().or(self.vrf.as_deref())
    }
}

/// One prefix's status: what the daemon wants and what its routing daemon has.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PrefixStatus {
    /// The prefix.
    pub prefix: String,
    /// Its place, for a kind that calls a place a VRF (`None` = the default one).
    pub vrf: Option<String>,
    /// Its place, for a kind that calls a place a protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Its routing daemon's kind (`frr`; empty from a daemon that knew the first kind alone).
    #[serde(default)]
    pub backend: String,
    /// Which one, as its kind names it (a binary, a control socket).
    #[serde(default)]
    pub instance: String,
    /// Whether the daemon wants it announced (`None`: the daemon is not running).
    pub desired_announced: Option<bool>,
    /// Its routing daemon has it installed.
    pub configured: bool,
    /// Its routing daemon has a valid best path and an established peer to send it to.
    pub advertised: bool,
    /// Established peers in the prefix's VRF and family.
    pub established_peers: usize,
    /// Its routing daemon differs from what the daemon wants (and the writer is not just
    /// applying the latest decision).
    pub drift: bool,
    /// Its routing daemon differs because the writer is applying the latest decision now.
    #[serde(default)]
    pub applying: bool,
    /// What it is installed with, read back from its routing daemon (`None`: not installed,
    /// or with something anycastd does not put in these terms, such as an operator's
    /// route-map).
    #[serde(default)]
    pub installed_attributes: Option<AttributesView>,
    /// The level the installed attributes amount to (`normal`, `de-preferred`,
    /// `graceful-shutdown`; `other` for an installed route in other terms).
    #[serde(default)]
    pub installed_level: Option<String>,
    /// What its best path carries as its routing daemon shows it (`None`: no best path, or
    /// not shown).
    #[serde(default)]
    pub advertised_attributes: Option<AttributesView>,
    /// The level the advertised attributes amount to.
    #[serde(default)]
    pub advertised_level: Option<String>,
    /// Installed (and wanted announced), but with other attributes than the wanted level's,
    /// installed or advertised (also counted in `drift` when the writer is not applying it).
    #[serde(default)]
    pub attributes_differ: bool,
    /// The writer's last error for this prefix (it is retrying).
    #[serde(default)]
    pub error: Option<String>,
    /// Its backend could not be read (or was not), so nothing above is known.
    #[serde(default)]
    pub unreadable: bool,
    /// Explanation, or the error reading its routing daemon.
    pub note: String,
}

/// How a service is drained, as fields.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DrainStatus {
    /// `operator`, `shutdown` or `removed`.
    pub cause: String,
    /// The operator's reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// The operator's uid.
    #[serde(default)]
    pub uid: Option<u32>,
    /// When the drain ends by itself (ms since the epoch).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// The same, RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// One service's status.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// State: `starting`, `healthy`, `unhealthy`, `draining` (`unknown` when neither the
    /// daemon nor the journal knows it).
    pub state: String,
    /// The state in words, with the drain cause (`draining (operator uid 0: maintenance)`).
    pub state_text: String,
    /// The drain, when draining.
    #[serde(default)]
    pub drain: Option<DrainStatus>,
    /// Since (RFC 3339).
    pub since: String,
    /// Since (ms since the epoch).
    pub since_ms: i64,
    /// Last transition cause.
    pub cause: String,
    /// Held withdrawn by flap damping.
    pub suppressed: bool,
    /// Whether the daemon wants its prefixes announced (`None`: the daemon is not running).
    pub desired_announced: Option<bool>,
    /// Healthy verdicts needed to announce.
    #[serde(default)]
    pub rise: Option<u32>,
    /// Unhealthy verdicts needed to withdraw.
    #[serde(default)]
    pub fall: Option<u32>,
    /// Checks that must pass (0: all).
    #[serde(default)]
    pub require: Option<u32>,
    /// The interval while confirming (ms), when configured.
    #[serde(default)]
    pub fast_interval_ms: Option<u64>,
    /// Consecutive healthy verdicts.
    #[serde(default)]
    pub healthy_streak: Option<u32>,
    /// Consecutive unhealthy verdicts.
    #[serde(default)]
    pub unhealthy_streak: Option<u32>,
    /// Its checks (from the running daemon).
    #[serde(default)]
    pub checks: Vec<CheckView>,
    /// Flap damping now (from the running daemon).
    #[serde(default)]
    pub damping: Option<DampingView>,
    /// The level its prefixes are wanted at, in words with the attributes (from the running
    /// daemon): `normal`, `de-preferred (as-path +3, MED 1000)`, `graceful shutdown until
    /// ... (community 65535:0)`, `withdrawn`.
    #[serde(default)]
    pub wanted_level: Option<String>,
    /// The same as fields: level name, attributes and a grace's end (from the running
    /// daemon).
    #[serde(default)]
    pub level: Option<LevelView>,
    /// Its prefixes.
    pub prefixes: Vec<PrefixStatus>,
}

/// The writers' view: per backend, the prefixes whose latest decision it has not shown yet,
/// with the writer's last error for each (`None`: being applied).
pub type Pending = HashMap<BackendId, Vec<(PrefixKey, Option<String>)>>;

/// What one backend showed of the prefixes asked, or why it could not be read.
type Inspected = Result<HashMap<PrefixKey, Shown>, String>;

/// Collect the status of the configured services (`only`: one of them). `snapshots` come
/// from the running daemon's drivers (`live`) or from the journal's last states.
pub async fn collect(
    config: &Config,
    snapshots: &[Snapshot],
    live: bool,
    pending: &Pending,
    only: Option<&str>,
) -> Vec<ServiceStatus> {
    let services: Vec<&crate::config::Service> = config
        .services
        .iter()
        .filter(|s| only.is_none_or(|name| s.name == name))
        .collect();
    let mut asked: BTreeMap<&BackendId, Vec<PrefixKey>> = BTreeMap::new();
    for service in &services {
        for p in &service.prefixes {
            asked.entry(&p.backend).or_default().push(p.key());
        }
    }
    let mut shown: BTreeMap<&BackendId, Inspected> = BTreeMap::new();
    for (backend, keys) in asked {
        let inspected = crate::routing::inspect(&config.routing(), backend, &keys)
            .await
            .map(|list| keys.into_iter().zip(list).collect())
            .map_err(|e| e.to_string());
        shown.insert(backend, inspected);
    }
    services
        .iter()
        .map(|service| {
            let snapshot = snapshots.iter().find(|v| v.name == service.name);
            // Rules and counters come from a driver that answered: a service whose driver
            // has ended (a stop waiting out another service's grace) has only its last
            // state ([`Snapshot::from_view`], rise 0), not "rise 0, fall 0".
            let counted = snapshot.filter(|v| live && v.rise > 0);
            let desired = snapshot.filter(|_| live).map(|v| v.desired_announced);
            let level = snapshot.filter(|_| live).and_then(|v| v.level.clone());
            let wanted = level.as_ref().and_then(|l| l.attributes.as_ref());
            let prefixes = service
                .prefixes
                .iter()
                .map(|p| {
                    let unsettled = pending.get(&p.backend).and_then(|list| {
                        list.iter()
                            .find(|(key, _)| key.0 == p.place && key.1 == p.prefix)
                            .map(|(_, e)| e.clone())
                    });
                    prefix_status(
                        p,
                        shown.get(&p.backend),
                        (desired, wanted),
                        unsettled,
                        config,
                    )
                })
                .collect();
            let (state, state_text, drain) = match snapshot {
                Some(v) => {
                    let text = crate::audit::text::state_text(&v.state);
                    (
                        anycastd_fsm::State::from(&v.state).name().to_owned(),
                        text,
                        drain_status(&v.state),
                    )
                }
                None => ("unknown".into(), "unknown".into(), None),
            };
            ServiceStatus {
                name: service.name.clone(),
                state,
                state_text,
                drain,
                since: snapshot
                    .map(|v| crate::audit::text::format_time(v.since_ms))
                    .unwrap_or_default(),
                since_ms: snapshot.map(|v| v.since_ms).unwrap_or(0),
                cause: snapshot.map(|v| v.cause.clone()).unwrap_or_default(),
                suppressed: snapshot
                    .and_then(|v| v.damping.as_ref())
                    .is_some_and(|d| d.suppressed),
                desired_announced: desired,
                rise: counted.map(|v| v.rise),
                fall: counted.map(|v| v.fall),
                require: counted.map(|v| v.require),
                fast_interval_ms: counted.and_then(|v| v.fast_interval_ms),
                healthy_streak: counted.map(|v| v.healthy_streak),
                unhealthy_streak: counted.map(|v| v.unhealthy_streak),
                checks: snapshot.map(|v| v.checks.clone()).unwrap_or_default(),
                damping: snapshot.and_then(|v| v.damping.clone()),
                wanted_level: snapshot
                    .filter(|_| live)
                    .and_then(|v| v.wanted_level.clone()),
                level,
                prefixes,
            }
        })
        .collect()
}

fn drain_status(state: &wire::State) -> Option<DrainStatus> {
    let wire::State::Draining(cause) = state else {
        return None;
    };
    Some(match cause {
        wire::DrainCause::Operator {
            reason,
            expires_at_ms,
            uid,
        } => DrainStatus {
            cause: "operator".into(),
            reason: Some(reason.clone()),
            uid: Some(*uid),
            expires_at_ms: *expires_at_ms,
            expires_at: expires_at_ms.map(crate::audit::text::format_time),
        },
        wire::DrainCause::Shutdown => DrainStatus {
            cause: "shutdown".into(),
            reason: None,
            uid: None,
            expires_at_ms: None,
            expires_at: None,
        },
        wire::DrainCause::Removed => DrainStatus {
            cause: "removed".into(),
            reason: None,
            uid: None,
            expires_at_ms: None,
            expires_at: None,
        },
    })
}

/// `wanted`: whether it is wanted announced and with which attributes (`None`: not known,
/// the daemon is not running). `unsettled`: the writer has not shown the latest decision
/// yet (`Some(None)`: it is being applied; `Some(Some(error))`: it failed and is retried).
fn prefix_status(
    p: &crate::config::Prefix,
    shown: Option<&Inspected>,
    (desired, wanted): (Option<bool>, Option<&AttributesView>),
    unsettled: Option<Option<String>>,
    config: &Config,
) -> PrefixStatus {
    let error = unsettled.clone().flatten();
    let want = |w: bool| if w { "announced" } else { "withdrawn" };
    // Its place under the key its kind names a place by (`vrf`, `protocol`).
    let place = p.place.name().map(str::to_owned);
    let noun = p.backend.kind.place_noun();
    let mut status = PrefixStatus {
        prefix: p.prefix.to_string(),
        vrf: place.clone().filter(|_| noun != "protocol"),
        protocol: place.filter(|_| noun == "protocol"),
        backend: p.backend.kind.name().to_owned(),
        instance: p.backend.instance.clone(),
        desired_announced: desired,
        configured: false,
        advertised: false,
        established_peers: 0,
        drift: false,
        applying: false,
        installed_attributes: None,
        installed_level: None,
        advertised_attributes: None,
        advertised_level: None,
        attributes_differ: false,
        error: error.clone(),
        unreadable: false,
        note: String::new(),
    };
    let backend = p.backend.kind.label();
    let shown = match shown {
        Some(Ok(shown)) => shown.get(&p.key()).cloned().unwrap_or_default(),
        Some(Err(e)) => {
            status.unreadable = true;
            status.note = match desired {
                Some(w) => format!("wanted {}; {backend} unreadable: {e}", want(w)),
                None => format!("{backend} unreadable: {e}"),
            };
            return status;
        }
        None => {
            status.unreadable = true;
            status.note = format!("{backend} not read");
            return status;
        }
    };
    status.configured = shown.configured;
    let valid = shown.valid;
    status.established_peers = shown.established_peers;
    status.advertised = status.configured && valid && status.established_peers > 0;
    let actual = match (status.configured, valid, status.established_peers) {
        (false, _, _) => "not configured".to_owned(),
        (true, false, _) => format!(
            "configured, not advertised: {}",
            p.backend.kind.no_valid_route_text()
        ),
        (true, true, 0) => format!(
            "configured, not advertised: {}",
            p.backend.kind.no_peer_text()
        ),
        (true, true, n) => format!("configured, advertised ({n} established peer(s))"),
    };
    status.installed_attributes = shown.installed.as_ref().map(AttributesView::from);
    status.installed_level = status
        .configured
        .then(|| {
            status
                .installed_attributes
                .as_ref()
                .map_or("other", AttributesView::level_name)
        })
        .map(str::to_owned);
    status.advertised_attributes = shown.advertised.as_ref().map(AttributesView::from);
    status.advertised_level = status
        .advertised_attributes
        .as_ref()
        .map(|a| a.level_name().to_owned());
    // Present as wanted, with other attributes than the wanted level's.
    status.attributes_differ = desired == Some(true)
        && status.configured
        && wanted.is_some_and(|w| {
            status.installed_attributes.as_ref() != Some(w)
                || status
                    .advertised_attributes
                    .as_ref()
                    .is_some_and(|a| a != w)
        });
    let differs = desired.is_some_and(|w| w != status.configured) || status.attributes_differ;
    let there = if status.attributes_differ {
        match &status.installed_attributes {
            Some(a) => format!("installed {}", a.text()),
            None => "installed with attributes not anycastd's (a route-map of its own?)".into(),
        }
    } else if status.configured {
        "present".into()
    } else {
        "absent".into()
    };
    let want = |w: bool| match (w, wanted) {
        (true, Some(attributes)) if status.attributes_differ => attributes.text(),
        _ => want(w).to_owned(),
    };
    // Differing while the writer applies the latest decision is not drift.
    status.applying = differs && matches!(unsettled, Some(None));
    status.drift = differs && !status.applying;
    // What the announcement carries, beside the wanted level, when it is not the plain route.
    let carries = match (&status.installed_attributes, &status.advertised_attributes) {
        _ if !status.configured => String::new(),
        (Some(i), a) if *i == AttributesView::default() && a.as_ref().is_none_or(|a| *a == *i) => {
            String::new()
        }
        (i, a) => format!(
            "; installed {}, advertised {}",
            i.as_ref().map_or_else(
                || "with attributes not anycastd's".into(),
                AttributesView::text
            ),
            a.as_ref()
                .map_or_else(|| "attributes not shown".into(), AttributesView::text)
        ),
    };
    let advertised_differs = status.attributes_differ
        && status.installed_attributes.as_ref() == wanted
        && status.advertised_attributes.is_some();
    let there = if advertised_differs {
        format!(
            "advertised {}",
            status
                .advertised_attributes
                .as_ref()
                .map(AttributesView::text)
                .unwrap_or_default()
        )
    } else {
        there
    };
    status.note = match (desired, differs, &unsettled) {
        (None, _, _) => format!("{backend}: {actual}{carries}"),
        (Some(w), false, _) => format!("wanted {}; {backend}: {actual}{carries}", want(w)),
        (Some(w), true, Some(None)) => format!(
            "being applied: wanted {}, still {there} in {backend}; the writer is applying it",
            want(w)
        ),
        (Some(w), true, Some(Some(error))) => format!(
            "MISMATCH: wanted {}, {there} in {backend}; the writer is retrying: {error}",
            want(w)
        ),
        (Some(w), true, None) => format!(
            "DRIFT: wanted {}, {there} in {backend}; repair at the next pass (at most {} s)",
            want(w),
            config
                .routing()
                .reconcile_interval(p.backend.kind)
                .as_secs()
        ),
    };
    status
}

fn seconds_ago(now_ms: i64, at_ms: i64) -> String {
    let s = (now_ms - at_ms).max(0) as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.1} s ago")
    } else if s < 7200.0 {
        format!("{:.0} min ago", s / 60.0)
    } else {
        format!("{:.1} h ago", s / 3600.0)
    }
}

/// Human rendering.
pub fn render_text(services: &[ServiceStatus], now_ms: i64) -> String {
    let mut out = String::new();
    for s in services {
        out.push_str(&format!("{}: {}", s.name, s.state_text));
        if s.suppressed {
            out.push_str(", suppressed by flap damping");
        }
        if !s.since.is_empty() {
            out.push_str(&format!(" since {}", s.since));
        }
        if !s.cause.is_empty() {
            out.push_str(&format!(" ({})", s.cause));
        }
        out.push('\n');
        if let Some(DrainStatus {
            expires_at: Some(until),
            ..
        }) = &s.drain
        {
            out.push_str(&format!("  drain ends by itself at {until}\n"));
        }
        // A level the state does not say alone (de-preferred, in a grace).
        if let Some(level) = s
            .wanted_level
            .as_ref()
            .filter(|l| !matches!(l.as_str(), "normal" | "withdrawn"))
        {
            out.push_str(&format!("  announced {level}\n"));
        }
        if let (Some(rise), Some(fall), Some(h), Some(u)) =
            (s.rise, s.fall, s.healthy_streak, s.unhealthy_streak)
        {
            let mut rules = format!("rise {rise}, fall {fall}");
            let gating = s.checks.iter().filter(|c| !c.shadow).count();
            if let Some(n) = s.require.filter(|n| *n != 0 && (*n as usize) < gating) {
                rules.push_str(&format!(", require {n} of {gating} checks"));
            }
            if let Some(ms) = s.fast_interval_ms {
                rules.push_str(&format!(", fast interval {:.1} s", ms as f64 / 1000.0));
            }
            out.push_str(&format!(
                "  {rules}: {h} healthy verdict(s) in a row, {u} unhealthy\n"
            ));
        }
        for c in &s.checks {
            let result = match &c.reason {
                Some(reason) => format!("{}: {reason}", c.result),
                None => c.result.clone(),
            };
            let since = c
                .since_ms
                .map(|t| format!(" since {}", crate::audit::text::format_time(t)))
                .unwrap_or_else(|| " (no result yet)".into());
            let last = c
                .last_ms
                .map(|t| format!(", last {}", seconds_ago(now_ms, t)))
                .unwrap_or_default();
            out.push_str(&format!(
                "  check {} ({}{}{}): {result}{since} ({} result(s) in a row{last}, every {:.1} s)\n",
                c.name,
                c.kind,
                c.vrf.as_ref().map(|v| format!(", vrf {v}")).unwrap_or_default(),
                if c.shadow { ", shadow" } else { "" },
                c.results_since_change,
                c.interval_ms as f64 / 1000.0
            ));
        }
        if let Some(d) = &s.damping {
            let mut line = format!("  flap damping: penalty {}", d.penalty);
            if d.suppressed {
                line.push_str(", SUPPRESSED");
                if let Some(since) = d.suppressed_since_ms {
                    line.push_str(&format!(
                        " since {}",
                        crate::audit::text::format_time(since)
                    ));
                }
                if let Some(until) = d.reuse_at_ms {
                    line.push_str(&format!(
                        ", until {} at the latest (then announced if its checks pass)",
                        crate::audit::text::format_time(until)
                    ));
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        for p in &s.prefixes {
            let prefix = crate::audit::text::place_text(&p.prefix, p.place(), &p.backend);
            out.push_str(&format!("  {prefix}: {}\n", p.note));
        }
    }
    out
}

/// Why a service announces nothing, for `status --check`: `dns: nothing announced
/// (unhealthy: check dns failed: resolver down)`.
fn silent_service_text(s: &ServiceStatus) -> String {
    let mut why = s.state_text.clone();
    if s.suppressed {
        why.push_str(", suppressed by flap damping");
    }
    // A drain's text says it all (its cause is only "drained").
    if s.drain.is_none() && !s.cause.is_empty() && !why.contains(&s.cause) {
        why.push_str(": ");
        why.push_str(&s.cause);
    }
    format!("{}: nothing announced ({why})", s.name)
}

/// Why a service announced anyway is not as it should be, for `status --check`: announced
/// de-preferred (its checks fail), in a drain's grace, or held by the fleet guard although
/// unhealthy. `None` for a service announced normally because it is healthy.
fn lowered_service_text(s: &ServiceStatus) -> Option<String> {
    if s.prefixes.is_empty() || s.desired_announced != Some(true) {
        return None;
    }
    let mut why = s.state_text.clone();
    if s.drain.is_none() && !s.cause.is_empty() && !why.contains(&s.cause) {
        why.push_str(": ");
        why.push_str(&s.cause);
    }
    let level = s.level.as_ref().map(|l| l.name.as_str());
    let what = match level {
        Some("de-preferred") => "announced de-preferred".to_owned(),
        Some("graceful-shutdown") => match s.level.as_ref().and_then(|l| l.grace_end.as_ref()) {
            Some(end) => format!("announced with GRACEFUL_SHUTDOWN until {end}"),
            None => "announced with GRACEFUL_SHUTDOWN".to_owned(),
        },
        _ if s.state == "unhealthy" => "announced although unhealthy".to_owned(),
        _ => return None,
    };
    Some(format!("{}: {what} ({why})", s.name))
}

/// A monitoring plugin's verdict (Nagios, Icinga): exit code and one summary line.
/// OK (0): the routing daemons are as wanted and every service announces something;
/// WARNING (1): as wanted, but a wanted prefix is configured and not advertised, or a service
/// announces nothing (its checks fail, it is starting, suppressed or drained: an OK while
/// nothing of a service is announced misled), or announces only de-preferred, in a drain's
/// grace or held by the fleet guard although unhealthy; CRITICAL (2): a routing daemon differs from
/// what is wanted; UNKNOWN (3): the daemon is not running or a routing daemon cannot be read.
pub fn check(services: &[ServiceStatus], live: bool) -> (u8, String) {
    if !live {
        return (3, "ANYCASTD UNKNOWN - anycastd is not running".into());
    }
    let mut critical = Vec::new();
    let mut warning = Vec::new();
    let mut unknown = Vec::new();
    for s in services {
        for p in &s.prefixes {
            let prefix = crate::audit::text::place_text(&p.prefix, p.place(), &p.backend);
            if p.unreadable {
                unknown.push(format!("{} {prefix}: {}", s.name, p.note));
            } else if p.drift {
                critical.push(format!("{} {prefix}: {}", s.name, p.note));
            } else if p.desired_announced == Some(true) && !p.advertised && !p.applying {
                warning.push(format!("{} {prefix}: {}", s.name, p.note));
            }
        }
    }
    // After the prefixes' warnings: a wanted prefix not advertised is the surprise, a
    // service withdrawn by its checks or an operator is what the daemon is for.
    for s in services {
        if s.desired_announced == Some(false) && !s.prefixes.is_empty() {
            warning.push(silent_service_text(s));
        } else if let Some(text) = lowered_service_text(s) {
            warning.push(text);
        }
    }
    let prefixes: usize = services.iter().map(|s| s.prefixes.len()).sum();
    let mut daemons: Vec<&str> = Vec::new();
    for p in services.iter().flat_map(|s| &s.prefixes) {
        // A daemon that knew one kind alone wrote no kind: the first.
        let label = crate::routing::BackendKind::from_name(&p.backend)
            .unwrap_or(crate::routing::KINDS[0])
            .label();
        if !daemons.contains(&label) {
            daemons.push(label);
        }
    }
    if daemons.is_empty() {
        daemons.push(crate::routing::KINDS[0].label());
    }
    if !critical.is_empty() {
        (2, format!("ANYCASTD CRITICAL - {}", critical.join("; ")))
    } else if !unknown.is_empty() {
        (3, format!("ANYCASTD UNKNOWN - {}", unknown.join("; ")))
    } else if !warning.is_empty() {
        (1, format!("ANYCASTD WARNING - {}", warning.join("; ")))
    } else {
        (
            0,
            format!(
                "ANYCASTD OK - {} service(s), {prefixes} prefix(es) as wanted in {}",
                services.len(),
                daemons.join(" and ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A running daemon's status of a service with one FRR prefix, as FRR shows it.
    fn service(name: &str, state_text: &str, cause: &str, announced: bool) -> ServiceStatus {
        let drain = state_text
            .starts_with("draining")
            .then(|| serde_json::json!({"cause": "operator", "reason": "maintenance"}));
        serde_json::from_value(serde_json::json!({
            "name": name,
            "state": state_text.split(' ').next(),
            "state_text": state_text,
            "drain": drain,
            "since": "",
            "since_ms": 0,
            "cause": cause,
            "suppressed": cause.contains("damping"),
            "desired_announced": announced,
            "prefixes": [{
                "prefix": "203.0.113.53/32",
                "vrf": null,
                "backend": "frr",
                "desired_announced": announced,
                "configured": announced,
                "advertised": announced,
                "established_peers": 1,
                "drift": false,
                "note": if announced { "wanted announced; FRR: advertised" } else { "wanted withdrawn; FRR: absent" },
            }],
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn check_warns_of_a_service_announced_de_preferred_in_a_grace_or_held() {
        let with_level = |state_text: &str, cause: &str, level: serde_json::Value| {
            let mut s = service("dns", state_text, cause, true);
            s.level = Some(serde_json::from_value(level).unwrap_or_else(|e| panic!("{e}")));
            s
        };
        let healthy = service("ntp", "healthy", "all checks pass", true);
        let depreferred = with_level(
            "unhealthy",
            "check dns failed: down",
            serde_json::json!({"name": "de-preferred"}),
        );
        assert_eq!(
            check(&[depreferred, healthy.clone()], true),
            (
                1,
                "ANYCASTD WARNING - dns: announced de-preferred (unhealthy: check dns failed: down)"
                    .to_owned()
            )
        );
        let grace = with_level(
            "draining (operator uid 0: maintenance)",
            "drained",
            serde_json::json!({"name": "graceful-shutdown", "grace_end": "2026-12-08T02:30:00.000Z"}),
        );
        assert_eq!(
            check(&[grace, healthy.clone()], true),
            (
                1,
                "ANYCASTD WARNING - dns: announced with GRACEFUL_SHUTDOWN until 2026-12-08T02:30:00.000Z (draining (operator uid 0: maintenance))"
                    .to_owned()
            )
        );
        let held = with_level(
            "unhealthy",
            "check dns failed: down",
            serde_json::json!({"name": "normal"}),
        );
        assert_eq!(check(&[held], true).0, 1);
        // Healthy and normal: OK.
        let normal = with_level(
            "healthy",
            "all checks pass",
            serde_json::json!({"name": "normal"}),
        );
        assert_eq!(check(&[normal, healthy], true).0, 0);
    }

    #[test]
    fn a_level_the_state_does_not_say_is_shown_and_a_plain_one_is_not() {
        let mut depreferred = service("dns", "unhealthy", "check dns failed: down", true);
        depreferred.wanted_level = Some("de-preferred (as-path +3, MED 1000)".into());
        let text = render_text(std::slice::from_ref(&depreferred), 0);
        assert!(
            text.contains("\n  announced de-preferred (as-path +3, MED 1000)\n"),
            "{text}"
        );
        let mut normal = service("ntp", "healthy", "all checks pass", true);
        normal.wanted_level = Some("normal".into());
        assert!(!render_text(&[normal], 0).contains("announced normal"));
    }

    #[test]
    fn a_service_announcing_nothing_is_a_warning_naming_it_and_why() {
        let healthy = service("ntp", "healthy", "2 healthy verdicts", true);
        assert_eq!(
            check(std::slice::from_ref(&healthy), true),
            (
                0,
                "ANYCASTD OK - 1 service(s), 1 prefix(es) as wanted in FRR".to_owned()
            )
        );
        for (state_text, cause, why) in [
            (
                "unhealthy",
                "check dns failed: resolver down",
                "(unhealthy: check dns failed: resolver down)",
            ),
            ("starting", "started", "(starting: started)"),
            (
                "unhealthy",
                "held withdrawn by flap damping",
                "(unhealthy, suppressed by flap damping: held withdrawn by flap damping)",
            ),
            (
                "draining (operator uid 0: maintenance)",
                "drained",
                "(draining (operator uid 0: maintenance))",
            ),
        ] {
            let down = service("dns", state_text, cause, false);
            assert_eq!(
                check(&[down.clone(), healthy.clone()], true),
                (
                    1,
                    format!("ANYCASTD WARNING - dns: nothing announced {why}")
                ),
                "{state_text}"
            );
            // Every service down: still a warning, naming each.
            let (code, line) = check(&[down, service("ntp", "starting", "started", false)], true);
            assert_eq!(code, 1, "{line}");
            assert!(
                line.ends_with("; ntp: nothing announced (starting: started)"),
                "{line}"
            );
        }
        // The daemon not running stays UNKNOWN: nothing is wanted then.
        assert_eq!(check(&[healthy], false).0, 3);
    }
}
