//! What the testbed's gobgpd peer holds of one prefix from one neighbour (its adj-in): the
//! AS path and the attributes a graded announcement changes.

use super::testbed::Testbed;
use std::process::Command;

/// One path at the peer, as `gobgp neighbor N adj-in -j` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPath {
    /// The AS path (every segment's ASes in order).
    pub as_path: Vec<u32>,
    /// The MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// RFC 1997 communities, each as one 32-bit number.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<(u32, u32, u32)>,
}

/// The path the peer holds for `prefix` from `neighbor` (`afi`: `ipv4` or `ipv6`), if any.
pub fn path_at_peer(tb: &Testbed, neighbor: &str, afi: &str, prefix: &str) -> Option<PeerPath> {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{}-peer", tb.name)])
        .args(["gobgp", "neighbor", neighbor, "adj-in", "-a", afi, "-j"])
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let path = json[prefix].as_array()?.first()?.clone();
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
            Some(4) => out.med = attr["metric"].as_u64().map(|m| m as u32),
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
    Some(out)
}
