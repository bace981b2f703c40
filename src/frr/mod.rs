//! FRRouting: vtysh calls ([`vtysh`]) and the level-triggered writer ([`writer`]), one per
//! vtysh binary, that applies every service's decisions.

pub mod vtysh;
pub mod writer;
