//! `anycastd status`: each service's state and, per prefix, whether FRR has it *configured*
//! (a `network` line in the running config) and whether it is *advertised* (a valid best path
//! in FRR's BGP table and at least one established peer in its VRF and address family).
//! The two differ when FRR's `bgp network import-check` finds no route for the prefix or no
//! session is up; showing them apart is the point.

use crate::config::Config;
use crate::frr::vtysh::{RunningConfig, Vtysh};
use anycastd_journal::wire;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

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

/// One check as its driver sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CheckView {
    /// Check name.
    pub name: String,
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
    /// Consecutive healthy verdicts.
    pub healthy_streak: u32,
    /// Consecutive unhealthy verdicts.
    pub unhealthy_streak: u32,
    /// Its checks.
    pub checks: Vec<CheckView>,
    /// Flap damping, when configured.
    #[serde(default)]
    pub damping: Option<DampingView>,
}

/// One prefix's status.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PrefixStatus {
    /// The prefix.
    pub prefix: String,
    /// Its VRF (`None` = default).
    pub vrf: Option<String>,
    /// A `network` line is in FRR's running config.
    pub configured: bool,
    /// FRR has a valid best path and an established peer to send it to.
    pub advertised: bool,
    /// Established peers in the prefix's VRF and family.
    pub established_peers: usize,
    /// Explanation, or the error reading FRR.
    pub note: String,
}

/// One service's status.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// State (`healthy`, `draining (shutdown)`, ...).
    pub state: String,
    /// Since (RFC 3339).
    pub since: String,
    /// Last transition cause.
    pub cause: String,
    /// Its prefixes.
    pub prefixes: Vec<PrefixStatus>,
}

#[derive(Default)]
struct FrrState {
    running: RunningConfig,
    /// (vrf name as FRR says it, prefix) -> valid best path exists.
    valid: HashMap<(String, String), bool>,
    /// (vrf, "ipv4"|"ipv6") -> established peers.
    established: HashMap<(String, &'static str), usize>,
}

fn vrf_key(vrf: &Option<String>) -> String {
    vrf.clone().unwrap_or_else(|| "default".to_owned())
}

async fn read_frr(vtysh: &Vtysh) -> Result<FrrState, String> {
    let running = vtysh.running_config().await.map_err(|e| e.to_string())?;
    let mut state = FrrState {
        running,
        ..FrrState::default()
    };
    for afi in ["ipv4", "ipv6"] {
        let text = vtysh
            .run(&[format!("show bgp vrf all {afi} unicast json")])
            .await
            .map_err(|e| e.to_string())?;
        state.valid.extend(valid_routes(&text));
    }
    let text = vtysh
        .run(&["show bgp vrf all summary json".to_owned()])
        .await
        .map_err(|e| e.to_string())?;
    state.established = established_peers(&text);
    Ok(state)
}

/// From `show bgp vrf all ipv4|ipv6 unicast json`: (VRF, prefix) -> a valid best path exists.
/// Anything that is not the expected JSON yields nothing.
pub fn valid_routes(text: &str) -> HashMap<(String, String), bool> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let mut valid = HashMap::new();
    for (vrf, table) in json.as_object().into_iter().flatten() {
        for (prefix, paths) in table["routes"].as_object().into_iter().flatten() {
            let ok = paths.as_array().into_iter().flatten().any(|p| {
                p["valid"].as_bool() == Some(true) && p["bestpath"].as_bool() == Some(true)
            });
            valid.insert((vrf.clone(), prefix.clone()), ok);
        }
    }
    valid
}

/// From `show bgp vrf all summary json`: (VRF, family) -> established peers.
pub fn established_peers(text: &str) -> HashMap<(String, &'static str), usize> {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let mut established = HashMap::new();
    for (vrf, families) in json.as_object().into_iter().flatten() {
        for (key, afi) in [("ipv4Unicast", "ipv4"), ("ipv6Unicast", "ipv6")] {
            let n = families[key]["peers"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, p)| p["state"].as_str() == Some("Established"))
                .count();
            established.insert((vrf.clone(), afi), n);
        }
    }
    established
}

/// Collect the status of every configured service.
pub async fn collect(config: &Config, views: &[ServiceView]) -> Vec<ServiceStatus> {
    let mut frr: BTreeMap<PathBuf, Result<FrrState, String>> = BTreeMap::new();
    for path in config.prefixes_by_vtysh().into_keys() {
        let vtysh = Vtysh {
            path: path.clone(),
            args: config.frrouting.vtysh_args.clone(),
            timeout: config.frrouting.vtysh_timeout,
        };
        frr.insert(path, read_frr(&vtysh).await);
    }
    config
        .services
        .iter()
        .map(|service| {
            let view = views.iter().find(|v| v.name == service.name);
            let prefixes = service
                .prefixes
                .iter()
                .map(|p| {
                    let mut status = PrefixStatus {
                        prefix: p.prefix.to_string(),
                        vrf: p.vrf.clone(),
                        configured: false,
                        advertised: false,
                        established_peers: 0,
                        note: String::new(),
                    };
                    match frr.get(&p.vtysh) {
                        Some(Ok(f)) => {
                            status.configured = f
                                .running
                                .instances
                                .get(&p.vrf)
                                .is_some_and(|i| i.networks.contains(&p.prefix));
                            let afi = if p.prefix.addr().is_ipv6() { "ipv6" } else { "ipv4" };
                            let valid = f
                                .valid
                                .get(&(vrf_key(&p.vrf), p.prefix.to_string()))
                                .copied()
                                .unwrap_or(false);
                            status.established_peers =
                                f.established.get(&(vrf_key(&p.vrf), afi)).copied().unwrap_or(0);
                            status.advertised =
                                status.configured && valid && status.established_peers > 0;
                            status.note = match (status.configured, valid, status.established_peers) {
                                (false, _, _) => "not configured in FRR".into(),
                                (true, false, _) => "configured, not advertised: no valid route (bgp network import-check?)".into(),
                                (true, true, 0) => "configured, not advertised: no established peer".into(),
                                (true, true, n) => format!("configured, advertised ({n} established peer(s))"),
                            };
                        }
                        Some(Err(e)) => status.note = format!("FRR unreadable: {e}"),
                        None => status.note = "FRR not read".into(),
                    }
                    status
                })
                .collect();
            ServiceStatus {
                name: service.name.clone(),
                state: view
                    .map(|v| {
                        let state = crate::history::state_text(&v.state);
                        if v.suppressed {
                            format!("{state}, suppressed by flap damping")
                        } else {
                            state
                        }
                    })
                    .unwrap_or_else(|| "unknown".into()),
                since: view
                    .map(|v| crate::history::format_time(v.since_ms))
                    .unwrap_or_default(),
                cause: view.map(|v| v.cause.clone()).unwrap_or_default(),
                prefixes,
            }
        })
        .collect()
}

/// Human rendering.
pub fn render_text(services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    for s in services {
        out.push_str(&format!("{}: {} since {}", s.name, s.state, s.since));
        if !s.cause.is_empty() {
            out.push_str(&format!(" ({})", s.cause));
        }
        out.push('\n');
        for p in &s.prefixes {
            let prefix = match &p.vrf {
                Some(vrf) => format!("{} (vrf {vrf})", p.prefix),
                None => p.prefix.clone(),
            };
            out.push_str(&format!("  {prefix}: {}\n", p.note));
        }
    }
    out
}
