//! The BGP attributes of a static route in BIRD: written as the route's own filter block in
//! the include file (`route P blackhole { bgp_path.prepend(65538); bgp_med = 1000;
//! bgp_community.add((65000,666)); bgp_large_community.add((65000,1,666)); };`), read back
//! from `show route ... all`, and the local AS a prepend repeats, from `show protocols all`.
//!
//! Facts relied on (BIRD 2.0.12, measured with a BGP peer): a static route's filter block is
//! run when the route is originated; `bgp_path.prepend` and `bgp_community.add` work on the
//! attributes the route does not have yet (an empty path, an empty list). An EBGP session
//! prepends its local AS once more when it sends the route, as to any route. `show route
//! all` lists a route's attributes as `1012` lines, one per attribute, `\tBGP.as_path: 65538
//! 65538`, `\tBGP.med: 1000`, `\tBGP.community: (65000,666)`, `\tBGP.large_community:
//! (65000, 1, 666)`; a long list goes on in lines starting `\t\t`. BIRD 3 names them
//! `bgp_path`, `bgp_med`, `bgp_community`, `bgp_large_community` (the BIRD 2 names with `cli
//! { v2 attributes; }`); both are read.

use super::control::Reply;
use crate::bgp::{Attributes, Community, LargeCommunity};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

/// What a static route carries besides the plain route, as BIRD holds it: the AS path as
/// numbers (the local AS N times for a prepend of N), the MED, the communities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOptions {
    /// The AS path the route starts with (before any BGP session prepends its own AS).
    pub path: Vec<u32>,
    /// The MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// RFC 1997 communities.
    pub communities: Vec<Community>,
    /// RFC 8092 large communities.
    pub large_communities: Vec<LargeCommunity>,
}

impl RouteOptions {
    /// The options that announce `attributes`, a prepend being of `local_as` (`None`: not
    /// known, and then `attributes` must prepend nothing).
    pub fn of(attributes: &Attributes, local_as: Option<u32>) -> RouteOptions {
        // Sorted as a read-back gives them, so that the file reads back the same.
        let attributes = attributes.clone().normalized();
        let path = match local_as {
            Some(asn) => vec![asn; usize::from(attributes.as_path_prepend)],
            None => Vec::new(),
        };
        RouteOptions {
            path,
            med: attributes.med,
            communities: attributes.communities.clone(),
            large_communities: attributes.large_communities.clone(),
        }
    }

    /// In the common words: a prepend of as many ASes as the path has.
    pub fn attributes(&self) -> Attributes {
        Attributes {
            as_path_prepend: u8::try_from(self.path.len()).unwrap_or(u8::MAX),
            med: self.med,
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
        }
        .normalized()
    }

    /// Whether it is the plain route.
    pub fn is_plain(&self) -> bool {
        *self == RouteOptions::default()
    }

    /// The route's filter block, ` { ...; }` (empty for the plain route). `bgp_path.prepend`
    /// puts its AS in front, so the path is prepended from its last AS to its first.
    pub fn filter_block(&self) -> String {
        if self.is_plain() {
            return String::new();
        }
        let mut block = String::from(" {");
        for asn in self.path.iter().rev() {
            block.push_str(&format!(" bgp_path.prepend({asn});"));
        }
        if let Some(med) = self.med {
            block.push_str(&format!(" bgp_med = {med};"));
        }
        for c in &self.communities {
            block.push_str(&format!(" bgp_community.add(({},{}));", c.0, c.1));
        }
        for c in &self.large_communities {
            block.push_str(&format!(
                " bgp_large_community.add(({},{},{}));",
                c.0, c.1, c.2
            ));
        }
        block.push_str(" }");
        block
    }
}

/// Per network of a `show route ... all` reply, what its first route listed carries (the
/// plain routes with nothing). A network's other routes (lines without it) are skipped.
pub fn parse_route_options(reply: &Reply) -> BTreeMap<IpNet, RouteOptions> {
    let mut out: BTreeMap<IpNet, RouteOptions> = BTreeMap::new();
    let mut seen: BTreeSet<IpNet> = BTreeSet::new();
    // The network whose attributes the lines now give, and the attribute a `\t\t` line
    // continues.
    let mut current: Option<IpNet> = None;
    let mut last: Option<&str> = None;
    for (code, text) in &reply.lines {
        if *code == 1007 {
            last = None;
            current = text
                .split_whitespace()
                .next()
                .filter(|_| !text.starts_with(char::is_whitespace))
                .and_then(|w| w.parse::<IpNet>().ok())
                .filter(|net| seen.insert(*net));
            continue;
        }
        let Some(net) = current else {
            continue;
        };
        let (name, value) = if let Some(more) = text.strip_prefix("\t\t") {
            match last {
                Some(name) => (name, more.trim()),
                None => continue,
            }
        } else {
            match text.trim().split_once(':') {
                Some((name, value)) => (name.trim(), value.trim()),
                None => continue,
            }
        };
        let options = out.entry(net).or_default();
        last = Some(match name {
            "BGP.as_path" | "bgp_path" => {
                options.path.extend(
                    value
                        .split_whitespace()
                        .filter_map(|w| w.parse::<u32>().ok()),
                );
                "bgp_path"
            }
            "BGP.med" | "bgp_med" => {
                options.med = value.parse().ok();
                "bgp_med"
            }
            "BGP.community" | "bgp_community" => {
                for [a, b] in tuples::<2>(value) {
                    if let (Ok(a), Ok(b)) = (u16::try_from(a), u16::try_from(b)) {
                        options.communities.push(Community(a, b));
                    }
                }
                "bgp_community"
            }
            "BGP.large_community" | "bgp_large_community" => {
                for [a, b, c] in tuples::<3>(value) {
                    options.large_communities.push(LargeCommunity(a, b, c));
                }
                "bgp_large_community"
            }
            _ => {
                last = None;
                continue;
            }
        });
    }
    out.retain(|_, o| !o.is_plain());
    for o in out.values_mut() {
        o.communities.sort_unstable();
        o.communities.dedup();
        o.large_communities.sort_unstable();
        o.large_communities.dedup();
    }
    out
}

/// The `(a,b)` or `(a, b, c)` tuples of numbers of a BIRD list, each of `N` numbers.
fn tuples<const N: usize>(text: &str) -> Vec<[u32; N]> {
    text.split('(')
        .filter_map(|part| part.split_once(')'))
        .filter_map(|(inside, _)| {
            let numbers: Vec<u32> = inside
                .split(',')
                .map(|n| n.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .ok()?;
            numbers.try_into().ok()
        })
        .collect()
}

/// A BGP protocol as `show protocols all` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpProtocol {
    /// Its name.
    pub name: String,
    /// Its local AS (`Local AS:`).
    pub local_as: Option<u32>,
    /// The tables of its channels (`Table:`).
    pub tables: Vec<String>,
}

/// The BGP protocols of a `show protocols all` reply.
pub fn parse_bgp_protocols(reply: &Reply) -> Vec<BgpProtocol> {
    let mut out: Vec<BgpProtocol> = Vec::new();
    let mut in_bgp = false;
    for (code, text) in &reply.lines {
        match code {
            1002 => {
                let mut words = text.split_whitespace();
                let name = words.next().unwrap_or_default().to_owned();
                in_bgp = words.next() == Some("BGP");
                if in_bgp {
                    out.push(BgpProtocol {
                        name,
                        local_as: None,
                        tables: Vec::new(),
                    });
                }
            }
            1006 if in_bgp => {
                let Some(protocol) = out.last_mut() else {
                    continue;
                };
                let line = text.trim();
                if let Some(asn) = line.strip_prefix("Local AS:") {
                    protocol.local_as = asn.trim().parse().ok();
                } else if let Some(table) = line.strip_prefix("Table:") {
                    protocol.tables.push(table.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

/// The local AS a route of `table` is prepended with: that of the BGP protocols with a
/// channel on `table` (of every BGP protocol when none has), when they all have the same.
/// Otherwise why not, in words.
pub fn local_as_for(protocols: &[BgpProtocol], table: &str) -> Result<u32, String> {
    let on_table: Vec<&BgpProtocol> = protocols
        .iter()
        .filter(|p| p.tables.iter().any(|t| t == table))
        .collect();
    let candidates: Vec<&BgpProtocol> = if on_table.is_empty() {
        protocols.iter().collect()
    } else {
        on_table
    };
    let numbers: BTreeSet<u32> = candidates.iter().filter_map(|p| p.local_as).collect();
    match numbers.len() {
        1 => Ok(numbers.into_iter().next().unwrap_or_default()),
        0 => Err("BIRD has no BGP protocol to take the local AS from".to_owned()),
        _ => Err(format!(
            "its BGP protocols have different local AS numbers ({}), and one static route goes to them all",
            candidates
                .iter()
                .filter_map(|p| Some(format!("{} {}", p.name, p.local_as?)))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::GRACEFUL_SHUTDOWN;

    fn reply(lines: &[&str]) -> Reply {
        let mut parser = super::super::control::Parser::default();
        for line in lines {
            parser.line(line).unwrap();
        }
        parser.finish()
    }

    fn deprefer() -> Attributes {
        Attributes {
            as_path_prepend: 2,
            med: Some(1000),
            communities: vec![Community(65000, 666)],
            large_communities: vec![LargeCommunity(65000, 1, 666)],
        }
    }

    #[test]
    fn the_filter_block_of_a_route() {
        let options = RouteOptions::of(&deprefer(), Some(65538));
        assert_eq!(
            options.filter_block(),
            " { bgp_path.prepend(65538); bgp_path.prepend(65538); bgp_med = 1000; bgp_community.add((65000,666)); bgp_large_community.add((65000,1,666)); }"
        );
        assert_eq!(options.attributes(), deprefer());
        assert_eq!(RouteOptions::default().filter_block(), "");
        let drain = RouteOptions::of(&Attributes::plain().with(GRACEFUL_SHUTDOWN), None);
        assert_eq!(drain.filter_block(), " { bgp_community.add((65535,0)); }");
        // A path of other ASes is written from its last AS to its first.
        let other = RouteOptions {
            path: vec![1, 2],
            ..RouteOptions::default()
        };
        assert_eq!(
            other.filter_block(),
            " { bgp_path.prepend(2); bgp_path.prepend(1); }"
        );
    }

    #[test]
    fn attributes_of_show_route_all_in_bird_2_and_3_words() {
        // Recorded from BIRD 2.0.12 (`show route protocol anycastd4 all`, the socket's lines),
        // with a long community list as BIRD wraps it.
        let r = reply(&[
            "1007-Table master4:",
            " 198.51.100.54/32     blackhole [anycastd4 18:09:13.936] * (200)",
            "1008-\tType: static univ",
            "1007-198.51.100.53/32     blackhole [anycastd4 18:09:13.936] * (200)",
            "1008-\tType: static univ",
            "1012-\tBGP.as_path: 65538 65538",
            " \tBGP.med: 1000",
            " \tBGP.community: (65000,666) (1,1)",
            " \t\t(65535,0)",
            " \tBGP.large_community: (65000, 1, 666)",
            "1007-198.51.100.55/32     blackhole [anycastd4 18:09:13.936] * (200)",
            "1008-\tType: static univ",
            "1012-\tBGP.med: 7",
            // Another protocol's route of the same network: not the first listed.
            "1007-                      blackhole [other 18:09:13.936] (200)",
            "1008-\tType: static univ",
            "1012-\tBGP.med: 9",
            "0000 ",
        ]);
        let options = parse_route_options(&r);
        assert_eq!(options.len(), 2, "{options:?}");
        let a = &options[&"198.51.100.53/32".parse().unwrap()];
        assert_eq!(a.path, [65538, 65538]);
        assert_eq!(
            a.attributes(),
            Attributes {
                as_path_prepend: 2,
                med: Some(1000),
                communities: vec![Community(1, 1), Community(65000, 666), GRACEFUL_SHUTDOWN],
                large_communities: vec![LargeCommunity(65000, 1, 666)],
            }
        );
        assert_eq!(options[&"198.51.100.55/32".parse().unwrap()].med, Some(7));

        // BIRD 3's names.
        let r = reply(&[
            "1007-Table master4:",
            " 198.51.100.53/32     blackhole [anycastd4 18:09:13.936] * (200)",
            "1008-\tType: static univ",
            "1012-\tbgp_path: 65538",
            " \tbgp_community: (65535,0)",
            "0000 ",
        ]);
        let options = parse_route_options(&r);
        assert_eq!(
            options[&"198.51.100.53/32".parse().unwrap()].attributes(),
            Attributes {
                as_path_prepend: 1,
                ..Attributes::plain().with(GRACEFUL_SHUTDOWN)
            }
        );
    }

    #[test]
    fn the_local_as_of_the_bgp_protocols_on_the_table() {
        // Recorded from BIRD 2.0.12 (`show protocols all`, shortened).
        let r = reply(&[
            "2002-Name       Proto      Table      State  Since         Info",
            "1002-anycastd4  Static     master4    up     18:09:10.770  ",
            "1006-  Channel ipv4",
            "     Table:          master4",
            "1002-peer_v4    BGP        ---        up     18:09:10.770  Established   ",
            "1006-  BGP state:          Established",
            "     Neighbor AS:      65001",
            "     Local AS:         65538",
            "   Channel ipv4",
            "     Table:          master4",
            "1002-peer_v6    BGP        ---        up     18:09:10.770  Established   ",
            "1006-  BGP state:          Established",
            "     Local AS:         65540",
            "   Channel ipv6",
            "     Table:          master6",
            "0000 ",
        ]);
        let bgp = parse_bgp_protocols(&r);
        assert_eq!(bgp.len(), 2);
        assert_eq!(bgp[0].local_as, Some(65538));
        assert_eq!(bgp[1].tables, ["master6"]);
        assert_eq!(local_as_for(&bgp, "master4"), Ok(65538));
        assert_eq!(local_as_for(&bgp, "master6"), Ok(65540));
        // No BGP protocol on the table: all of them, which differ.
        assert_eq!(
            local_as_for(&bgp, "other"),
            Err("its BGP protocols have different local AS numbers (peer_v4 65538, peer_v6 65540), and one static route goes to them all".to_owned())
        );
        assert_eq!(
            local_as_for(&[], "master4"),
            Err("BIRD has no BGP protocol to take the local AS from".to_owned())
        );
    }
}
