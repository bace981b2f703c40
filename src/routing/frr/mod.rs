//! FRRouting: vtysh calls and the running config ([`vtysh`]).

pub mod vtysh;
