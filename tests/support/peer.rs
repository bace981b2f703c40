//! What the testbed's gobgpd peer holds of one prefix from one neighbour (its adj-in), and
//! what a graded announcement should make it hold: the AS path and the attributes a level
//! changes. One reader for the FRR, BIRD and GoBGP tests (and the monitor's lines).

use super::testbed::Testbed;
use anycastd::bgp::Attributes;
use std::process::Command;
use std::time::{Duration, Instant};

/// One path at the peer, as `gobgp neighbor N adj-in -j` (or `gobgp monitor ... -j`) lists it.
/// Communities and large communities are sets: kept sorted, so the order a speaker sends them
/// in does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPath {
    /// The AS path (every segment's ASes in order).
    pub as_path: Vec<u32>,
    /// The MULTI_EXIT_DISC; a path without one counts as 0, as the peer's best-path selection
    /// compares it by default (FRR sends MED 0 with a plain `network` route, BIRD and GoBGP
    /// send none).
    pub med: u32,
    /// RFC 1997 communities, each as one 32-bit number, sorted.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities, sorted.
    pub large_communities: Vec<(u32, u32, u32)>,
}

impl PeerPath {
    /// What the peer should hold of a plain route originated by AS `asn` (over EBGP).
    pub fn plain(asn: u32) -> PeerPath {
        PeerPath::expected(asn, &Attributes::plain())
    }

    /// What the peer should hold of a route of AS `asn` announced with `a`: the AS prepended
    /// `a.as_path_prepend` times plus once by the EBGP session, the MED, the communities.
    pub fn expected(asn: u32, a: &Attributes) -> PeerPath {
        let mut communities: Vec<u32> = a.communities.iter().map(|c| c.as_u32()).collect();
        communities.sort_unstable();
        let mut large_communities: Vec<(u32, u32, u32)> = a
            .large_communities
            .iter()
            .map(|l| (l.0, l.1, l.2))
            .collect();
        large_communities.sort_unstable();
        PeerPath {
            as_path: vec![asn; 1 + usize::from(a.as_path_prepend)],
            med: a.med.unwrap_or(0),
            communities,
            large_communities,
        }
    }

    /// The path of one entry of gobgp's JSON (its `attrs` array).
    pub fn from_json(path: &serde_json::Value) -> PeerPath {
        let mut out = PeerPath::default();
        for attr in path["attrs"].as_array().into_iter().flatten() {
            match attr["type"].as_u64() {
                Some(2) => {
                    for segment in attr["as_paths"].as_array().into_iter().flatten() {
                        for asn in segment["asns"].as_array().into_iter().flatten() {
                            out.as_path.extend(asn.as_u64().map(|a| a as u32));
                        }
                    }
                }
                Some(4) => out.med = attr["metric"].as_u64().unwrap_or_default() as u32,
                Some(8) => {
                    for c in attr["communities"].as_array().into_iter().flatten() {
                        out.communities.extend(c.as_u64().map(|c| c as u32));
                    }
                }
                Some(32) => {
                    for c in attr["value"].as_array().into_iter().flatten() {
                        let n = |k: &str| c[k].as_u64().unwrap_or_default() as u32;
                        out.large_communities
                            .push((n("ASN"), n("LocalData1"), n("LocalData2")));
                    }
                }
                _ => {}
            }
        }
        out.communities.sort_unstable();
        out.large_communities.sort_unstable();
        out
    }
}

/// Every path the peer holds from `neighbor` (`afi`: `ipv4` or `ipv6`), by prefix: one
/// `gobgp neighbor N adj-in -j` call.
pub fn peer_paths(
    tb: &Testbed,
    neighbor: &str,
    afi: &str,
) -> std::collections::BTreeMap<String, PeerPath> {
    let Ok(out) = Command::new("ip")
        .args(["netns", "exec", &format!("{}-peer", tb.name)])
        .args(["gobgp", "neighbor", neighbor, "adj-in", "-a", afi, "-j"])
        .output()
    else {
        return Default::default();
    };
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    json.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(prefix, paths)| {
            let first = paths.as_array()?.first()?;
            Some((prefix.clone(), PeerPath::from_json(first)))
        })
        .collect()
}

/// The path the peer holds for `prefix` from `neighbor` (`afi`: `ipv4` or `ipv6`), if any.
pub fn peer_path(tb: &Testbed, neighbor: &str, afi: &str, prefix: &str) -> Option<PeerPath> {
    peer_paths(tb, neighbor, afi).remove(prefix)
}

/// Wait (generously: 30 s) until the peer holds `expected` of `prefix` from `neighbor`;
/// panics with what it holds otherwise.
pub fn wait_peer_path(tb: &Testbed, neighbor: &str, afi: &str, prefix: &str, expected: &PeerPath) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = peer_path(tb, neighbor, afi, prefix);
        if path.as_ref() == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the peer holds {path:?} of {prefix} from {neighbor}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
