//! FRR's words and constructors ([`Kind`]): a prefix's place is a VRF (`vrf 123`), an
//! instance is a vtysh binary, shown bare in messages (as the logs always named it), and
//! restarts are bgpd's.

use super::{Frr, Settings};
use crate::routing::kind::{Open, OpenWith, Opener};
use crate::routing::{BackendId, BackendKind, Kind};
use std::time::Duration;

/// FRRouting, through vtysh.
pub struct FrrKind;

/// The handle on FRR's kind, as [`crate::routing::KINDS`] lists it.
pub const KIND: BackendKind = BackendKind::of(&FrrKind);

impl BackendId {
    /// The FRR reached through the vtysh binary `vtysh`.
    pub fn frr(vtysh: impl AsRef<std::path::Path>) -> BackendId {
        BackendId {
            kind: KIND,
            instance: vtysh.as_ref().display().to_string(),
        }
    }
}

impl Open for Frr {
    fn open(settings: &crate::routing::Settings, id: &BackendId) -> Frr {
        Frr::new(id, &settings.of::<Settings>(KIND))
    }
}

impl Kind for FrrKind {
    fn name(&self) -> &'static str {
        "frr"
    }

    fn label(&self) -> &'static str {
        "FRR"
    }

    fn daemon(&self) -> &'static str {
        "bgpd"
    }

    fn read_source(&self) -> &'static str {
        "FRR's running config"
    }

    fn no_valid_route_text(&self) -> &'static str {
        "no valid route (bgp network import-check?)"
    }

    fn instance_noun(&self) -> &'static str {
        "vtysh"
    }

    fn id_text(&self, instance: &str) -> String {
        instance.to_owned()
    }

    fn instance_text(&self, instance: &str) -> String {
        format!("FRR through {instance}")
    }

    fn reconcile_interval(&self, settings: &crate::routing::Settings) -> Duration {
        settings.of::<Settings>(KIND).reconcile_interval
    }

    fn config(&self) -> Option<&'static dyn crate::config::BackendLoader> {
        Some(&super::config::Loader)
    }

    fn opener(&self) -> &'static dyn Opener {
        &OpenWith::<Frr>::NEW
    }

    fn metric_families(&self) -> &'static [(&'static str, &'static str, &'static str)] {
        super::control::METRIC_FAMILIES
    }

    fn zero_counters(&self, instance: &str) {
        super::control::zero_counters(instance);
    }
}
