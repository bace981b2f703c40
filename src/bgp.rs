//! BGP path attributes a prefix can be announced with besides the plain route: the words
//! config, the service core, the routing backends and the audit share (a leaf: it imports
//! nothing of the crate).
//!
//! A plain announcement has [`Attributes::default`]. A de-preferred one prepends the local
//! AS, sets a MULTI_EXIT_DISC and adds communities; one in a graceful drain adds
//! [`GRACEFUL_SHUTDOWN`] (RFC 8326) as well. Each backend renders them in its own terms (an
//! FRR route-map, a BIRD per-route filter, GoBGP path attributes) and reads them back.

use std::fmt;
use std::str::FromStr;

/// An RFC 1997 community, `ASN:VALUE` with two 16-bit halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u16, pub u16);

/// RFC 8326's GRACEFUL_SHUTDOWN, `65535:0`: receivers that honour it lower the route's
/// preference so that traffic moves before the withdrawal.
pub const GRACEFUL_SHUTDOWN: Community = Community(65535, 0);

impl Community {
    /// As one 32-bit number (what BGP carries, and what some tools print).
    pub fn as_u32(self) -> u32 {
        (u32::from(self.0) << 16) | u32::from(self.1)
    }

    /// From one 32-bit number.
    pub fn from_u32(value: u32) -> Community {
        Community((value >> 16) as u16, (value & 0xffff) as u16)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

/// Why a community does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    /// Not `A:B` (or `A:B:C`).
    #[error("'{0}' is not {1}")]
    Shape(String, &'static str),
    /// A part out of range.
    #[error("'{text}': {part} is out of range (0-{max})")]
    Range {
        /// The whole text.
        text: String,
        /// The part.
        part: String,
        /// Its largest value.
        max: u64,
    },
}

fn parts<const N: usize>(
    text: &str,
    shape: &'static str,
    max: u64,
) -> Result<[u64; N], CommunityError> {
    let shape_err = || CommunityError::Shape(text.to_owned(), shape);
    let mut out = [0u64; N];
    let mut split = text.split(':');
    for slot in &mut out {
        let part = split.next().ok_or_else(shape_err)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || part.len() > 12 {
            return Err(shape_err());
        }
        let value: u64 = part.parse().map_err(|_| shape_err())?;
        if value > max {
            return Err(CommunityError::Range {
                text: text.to_owned(),
                part: part.to_owned(),
                max,
            });
        }
        *slot = value;
    }
    if split.next().is_some() {
        return Err(shape_err());
    }
    Ok(out)
}

impl FromStr for Community {
    type Err = CommunityError;
    fn from_str(text: &str) -> Result<Community, CommunityError> {
        let [a, b] = parts::<2>(text, "a community ASN:VALUE (RFC 1997)", 65535)?;
        Ok(Community(a as u16, b as u16))
    }
}

/// An RFC 8092 large community, `GLOBAL:LOCAL1:LOCAL2` with three 32-bit parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

impl FromStr for LargeCommunity {
    type Err = CommunityError;
    fn from_str(text: &str) -> Result<LargeCommunity, CommunityError> {
        let [a, b, c] = parts::<3>(
            text,
            "a large community GLOBAL:LOCAL1:LOCAL2 (RFC 8092)",
            u64::from(u32::MAX),
        )?;
        Ok(LargeCommunity(a as u32, b as u32, c as u32))
    }
}

/// What a prefix is announced with besides the plain route. The default is the plain route.
/// Communities are kept sorted and without repeats, so that two sets that announce the same
/// compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attributes {
    /// How many times the local AS is prepended to the AS path (0: none).
    pub as_path_prepend: u8,
    /// The MULTI_EXIT_DISC (`None`: the daemon's own, usually none).
    pub med: Option<u32>,
    /// RFC 1997 communities added.
    pub communities: Vec<Community>,
    /// RFC 8092 large communities added.
    pub large_communities: Vec<LargeCommunity>,
}

impl Attributes {
    /// The plain route.
    pub fn plain() -> Attributes {
        Attributes::default()
    }

    /// Whether this is the plain route (nothing added).
    pub fn is_plain(&self) -> bool {
        *self == Attributes::default()
    }

    /// The same, communities sorted and without repeats.
    pub fn normalized(mut self) -> Attributes {
        self.communities.sort_unstable();
        self.communities.dedup();
        self.large_communities.sort_unstable();
        self.large_communities.dedup();
        self
    }

    /// The same with `community` added.
    pub fn with(mut self, community: Community) -> Attributes {
        self.communities.push(community);
        self.normalized()
    }

    /// Whether it carries RFC 8326's GRACEFUL_SHUTDOWN.
    pub fn graceful_shutdown(&self) -> bool {
        self.communities.contains(&GRACEFUL_SHUTDOWN)
    }
}

/// In words, as history and status show them: `as-path +3, MED 1000, communities
/// 65000:666, large communities 65000:1:666`; `plain` for the plain route.
impl fmt::Display for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.as_path_prepend > 0 {
            parts.push(format!("as-path +{}", self.as_path_prepend));
        }
        if let Some(med) = self.med {
            parts.push(format!("MED {med}"));
        }
        let list = |v: &[String]| v.join(" ");
        if !self.communities.is_empty() {
            let c: Vec<String> = self.communities.iter().map(ToString::to_string).collect();
            parts.push(format!(
                "communit{} {}",
                if c.len() == 1 { "y" } else { "ies" },
                list(&c)
            ));
        }
        if !self.large_communities.is_empty() {
            let c: Vec<String> = self
                .large_communities
                .iter()
                .map(ToString::to_string)
                .collect();
            parts.push(format!(
                "large communit{} {}",
                if c.len() == 1 { "y" } else { "ies" },
                list(&c)
            ));
        }
        if parts.is_empty() {
            f.write_str("plain")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Path attributes as the journal records them (format 6).
pub fn wire_attributes(a: &Attributes) -> anycastd_journal::wire::Attributes {
    anycastd_journal::wire::Attributes {
        as_path_prepend: a.as_path_prepend,
        med: a.med,
        communities: a.communities.iter().map(|c| c.as_u32()).collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|c| (c.0, c.1, c.2))
            .collect(),
    }
}

/// Path attributes as the journal recorded them.
pub fn attributes_of(a: &anycastd_journal::wire::Attributes) -> Attributes {
    Attributes {
        as_path_prepend: a.as_path_prepend,
        med: a.med,
        communities: a
            .communities
            .iter()
            .map(|c| Community::from_u32(*c))
            .collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|(g, l1, l2)| LargeCommunity(*g, *l1, *l2))
            .collect(),
    }
    .normalized()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse_in_range_and_refuse_the_rest() {
        assert_eq!("65000:666".parse(), Ok(Community(65000, 666)));
        assert_eq!("65535:0".parse(), Ok(GRACEFUL_SHUTDOWN));
        assert_eq!(GRACEFUL_SHUTDOWN.as_u32(), 0xFFFF_0000);
        assert_eq!(Community::from_u32(4259840666), Community(65000, 666));
        for bad in [
            "65536:1", "1:65536", "1", "1:2:3", ":1", "1:", "a:b", "-1:2", " 1:2",
        ] {
            assert!(bad.parse::<Community>().is_err(), "{bad}");
        }
        assert_eq!("65000:1:666".parse(), Ok(LargeCommunity(65000, 1, 666)));
        assert_eq!(
            "4294967295:0:4294967295".parse(),
            Ok(LargeCommunity(u32::MAX, 0, u32::MAX))
        );
        for bad in ["4294967296:0:0", "1:2", "1:2:3:4", "1::3"] {
            assert!(bad.parse::<LargeCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_in_words_and_compared_whatever_the_order() {
        let a = Attributes {
            as_path_prepend: 3,
            med: Some(1000),
            communities: vec![Community(65000, 666), Community(1, 1), Community(1, 1)],
            large_communities: vec![LargeCommunity(65000, 1, 666)],
        }
        .normalized();
        assert_eq!(
            a.to_string(),
            "as-path +3, MED 1000, communities 1:1 65000:666, large community 65000:1:666"
        );
        assert_eq!(Attributes::plain().to_string(), "plain");
        let g = Attributes::plain().with(GRACEFUL_SHUTDOWN);
        assert!(g.graceful_shutdown() && !a.graceful_shutdown());
        assert_eq!(g.to_string(), "community 65535:0");
    }
}
