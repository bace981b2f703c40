//! Shared test fixtures.
#![allow(dead_code)]

pub mod cabourotte;
pub mod daemon;
pub mod docs;
pub mod etcd;
pub mod fake_frr;
pub mod live;
pub mod monitor;
pub mod oracle;
pub mod peer;
pub mod rng;
pub mod servers;
pub mod skip;
pub mod testbed;
