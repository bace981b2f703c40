//! The route-maps that carry a prefix's attributes in FRR: one per attribute set, named after
//! a hash of its content (`anycastd-1f2e3d4c`), so that anycastd knows its own and never
//! edits one in place.
//!
//! A prefix announced with attributes is `network P route-map anycastd-HASH`; the plain route
//! is `network P`. Facts relied on (FRR 8.4, bgpd `bgp_static_set`): entering `network P
//! route-map M` for a prefix already there switches its map at once and updates the route in
//! place, without a withdrawal; whereas a change to the *content* of a map in use reaches the
//! routes only after `bgp route-map delay-timer` (5 s by default). So a level switch defines
//! the new map (if it is not there yet) and names it on the network line; a map's content is
//! never changed while a network line names it, and a map no network line names any more is
//! removed (`no route-map M`). A map is anycastd's when its name is `anycastd-` and the hash
//! of its content: a map of another name, or named `anycastd-...` with other content, is an
//! operator's and is never touched.
//!
//! The content, in the order FRR's running config shows it: `set as-path prepend ASN ...`
//! (the instance's own AS, N times), `set community ... additive`, `set large-community ...
//! additive`, `set metric N` (the MULTI_EXIT_DISC). An instance of another AS has maps of
//! its own when it prepends (the AS is part of the content).

use crate::bgp::{Attributes, Community, LargeCommunity};

/// What the name of every route-map anycastd creates starts with.
pub const NAME_PREFIX: &str = "anycastd-";

/// The `set` lines of `attributes` for an instance of AS `asn`, as FRR's running config shows
/// them (without their indentation).
pub fn set_lines(attributes: &Attributes, asn: u32) -> Vec<String> {
    let attributes = attributes.clone().normalized();
    let mut lines = Vec::new();
    if attributes.as_path_prepend > 0 {
        let path = vec![asn.to_string(); usize::from(attributes.as_path_prepend)];
        lines.push(format!("set as-path prepend {}", path.join(" ")));
    }
    if !attributes.communities.is_empty() {
        let words: Vec<String> = attributes
            .communities
            .iter()
            .map(|c| community_word(*c))
            .collect();
        lines.push(format!("set community {} additive", words.join(" ")));
    }
    if !attributes.large_communities.is_empty() {
        let words: Vec<String> = attributes
            .large_communities
            .iter()
            .map(ToString::to_string)
            .collect();
        lines.push(format!("set large-community {} additive", words.join(" ")));
    }
    if let Some(med) = attributes.med {
        lines.push(format!("set metric {med}"));
    }
    lines
}

/// The name of the map that carries `attributes` in an instance of AS `asn`:
/// [`NAME_PREFIX`] and the FNV-1a hash (32 bits, hexadecimal) of its `set` lines.
pub fn name(attributes: &Attributes, asn: u32) -> String {
    name_of_lines(&set_lines(attributes, asn))
}

fn name_of_lines(lines: &[String]) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in lines.join("\n").bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{NAME_PREFIX}{hash:08x}")
}

/// The lines of a map as the running config shows them, each trimmed: `permit 10` for its
/// entry line (`route-map NAME permit 10`), then the entry's lines.
pub fn body(attributes: &Attributes, asn: u32) -> Vec<String> {
    let mut lines = vec!["permit 10".to_owned()];
    lines.extend(set_lines(attributes, asn));
    lines
}

/// The vtysh lines that define the map of `attributes` (from the config node, back to it).
pub fn definition(attributes: &Attributes, asn: u32) -> Vec<String> {
    let mut lines = vec![format!("route-map {} permit 10", name(attributes, asn))];
    lines.extend(set_lines(attributes, asn));
    lines.push("exit".to_owned());
    lines
}

/// The attributes an anycastd map carries, from its name and its lines in the running config
/// ([`body`]), for a network line in an instance of AS `asn`. `None` when it is not one of
/// anycastd's (another name, other content: an operator's), or prepends another AS.
pub fn attributes_of(name: &str, lines: &[String], asn: u32) -> Option<Attributes> {
    if !name.starts_with(NAME_PREFIX) {
        return None;
    }
    let (entry, sets) = lines.split_first()?;
    if entry != "permit 10" {
        return None;
    }
    let mut attributes = Attributes::default();
    for line in sets {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["set", "as-path", "prepend", path @ ..] if !path.is_empty() => {
                if path.iter().any(|a| a.parse::<u32>() != Ok(asn)) {
                    return None;
                }
                attributes.as_path_prepend = u8::try_from(path.len()).ok()?;
            }
            ["set", "metric", med] => attributes.med = Some(med.parse().ok()?),
            ["set", "community", list @ .., "additive"] if !list.is_empty() => {
                for word in list {
                    attributes.communities.push(community_of_word(word)?);
                }
            }
            ["set", "large-community", list @ .., "additive"] if !list.is_empty() => {
                for word in list {
                    attributes
                        .large_communities
                        .push(word.parse::<LargeCommunity>().ok()?);
                }
            }
            _ => return None,
        }
    }
    let attributes = attributes.normalized();
    // Its own name and exactly the content anycastd gives it: nothing added or changed.
    (name == self::name(&attributes, asn) && body(&attributes, asn) == lines).then_some(attributes)
}

/// Whether a map named `name` with `lines` is one anycastd made (for any AS): the hash of its
/// `set` lines is its name.
pub fn is_own(name: &str, lines: &[String]) -> bool {
    name.starts_with(NAME_PREFIX)
        && lines.first().map(String::as_str) == Some("permit 10")
        && name_of_lines(&lines[1..]) == name
}

/// The well-known communities FRR shows by name (bgpd `community_str`), with their values.
const WELL_KNOWN: &[(&str, u32)] = &[
    ("internet", 0),
    ("graceful-shutdown", 0xFFFF_0000),
    ("accept-own", 0xFFFF_0001),
    ("route-filter-translated-v4", 0xFFFF_0002),
    ("route-filter-v4", 0xFFFF_0003),
    ("route-filter-translated-v6", 0xFFFF_0004),
    ("route-filter-v6", 0xFFFF_0005),
    ("llgr-stale", 0xFFFF_0006),
    ("no-llgr", 0xFFFF_0007),
    ("accept-own-nexthop", 0xFFFF_0008),
    ("blackhole", 0xFFFF_029A),
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("local-AS", 0xFFFF_FF03),
    ("no-peer", 0xFFFF_FF04),
];

/// A community as FRR shows it: its well-known name (`graceful-shutdown` for 65535:0) or
/// `ASN:VALUE`.
pub fn community_word(community: Community) -> String {
    WELL_KNOWN
        .iter()
        .find(|(_, value)| *value == community.as_u32())
        .map(|(word, _)| (*word).to_owned())
        .unwrap_or_else(|| community.to_string())
}

/// A community from FRR's words for it (a well-known name or `ASN:VALUE`).
pub fn community_of_word(word: &str) -> Option<Community> {
    WELL_KNOWN
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, value)| Community::from_u32(*value))
        .or_else(|| word.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::GRACEFUL_SHUTDOWN;

    fn deprefer() -> Attributes {
        Attributes {
            as_path_prepend: 3,
            med: Some(1000),
            communities: vec![Community(65000, 666)],
            large_communities: vec![LargeCommunity(65000, 1, 666)],
        }
    }

    #[test]
    fn a_map_is_defined_as_frr_shows_it_and_named_after_its_content() {
        let drain = deprefer().with(GRACEFUL_SHUTDOWN);
        assert_eq!(
            definition(&drain, 65536)[1..],
            [
                "set as-path prepend 65536 65536 65536",
                "set community 65000:666 graceful-shutdown additive",
                "set large-community 65000:1:666 additive",
                "set metric 1000",
                "exit",
            ]
        );
        let name = name(&drain, 65536);
        // Pinned: a build that named it otherwise would take the maps in FRR for an
        // operator's and leave them behind (docs/backends.md shows this one).
        assert_eq!(name, "anycastd-92b08f78");
        assert_eq!(
            definition(&drain, 65536)[0],
            format!("route-map {name} permit 10")
        );
        // Another set, or the same prepend in another AS, is another map; a set without a
        // prepend is the same map in every AS.
        assert_ne!(name, self::name(&deprefer(), 65536));
        assert_ne!(name, self::name(&drain, 65537));
        let gshut = Attributes::plain().with(GRACEFUL_SHUTDOWN);
        assert_eq!(self::name(&gshut, 65536), self::name(&gshut, 65537));
    }

    #[test]
    fn a_map_read_back_is_anycastds_only_with_its_own_name_and_content() {
        let drain = deprefer().with(GRACEFUL_SHUTDOWN);
        let name = name(&drain, 65536);
        let lines = body(&drain, 65536);
        assert_eq!(attributes_of(&name, &lines, 65536), Some(drain.clone()));
        assert!(is_own(&name, &lines));
        // In an instance of another AS, it prepends the wrong AS.
        assert_eq!(attributes_of(&name, &lines, 65537), None);
        assert!(is_own(&name, &lines));
        // A line added by hand, a content changed, another name: an operator's.
        let mut added = lines.clone();
        added.push("set local-preference 50".into());
        assert_eq!(attributes_of(&name, &added, 65536), None);
        assert!(!is_own(&name, &added));
        let mut changed = lines.clone();
        changed[4] = "set metric 10".into();
        assert_eq!(attributes_of(&name, &changed, 65536), None);
        assert_eq!(attributes_of("DEPREFER", &lines, 65536), None);
        assert!(!is_own("anycastd-deprefer", &lines));
    }

    #[test]
    fn well_known_communities_go_by_frrs_names_both_ways() {
        assert_eq!(community_word(GRACEFUL_SHUTDOWN), "graceful-shutdown");
        assert_eq!(community_word(Community(65000, 666)), "65000:666");
        assert_eq!(
            community_of_word("graceful-shutdown"),
            Some(GRACEFUL_SHUTDOWN)
        );
        assert_eq!(
            community_of_word("no-export"),
            Some(Community(65535, 65281))
        );
        assert_eq!(community_of_word("65000:666"), Some(Community(65000, 666)));
        assert_eq!(community_of_word("nonsense"), None);
    }
}
