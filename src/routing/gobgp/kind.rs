//! GoBGP's words and constructors ([`Kind`]): an instance is gobgpd's API address, written
//! `GoBGP at 127.0.0.1:50051`; gobgpd has its global RIB only, so every prefix is in the
//! default place and written alone.

use super::{Gobgp, Settings};
use crate::routing::kind::{Open, OpenWith, Opener};
use crate::routing::{BackendId, BackendKind, Kind};
use std::time::Duration;

/// GoBGP (gobgpd 3.x), through its gRPC API.
pub struct GobgpKind;

/// The handle on GoBGP's kind, as [`crate::routing::KINDS`] lists it.
pub const KIND: BackendKind = BackendKind::of(&GobgpKind);

impl BackendId {
    /// The gobgpd whose gRPC API is at `api` (`IP:PORT`).
    pub fn gobgp(api: &str) -> BackendId {
        BackendId {
            kind: KIND,
            instance: api.to_owned(),
        }
    }
}

impl Open for Gobgp {
    fn open(settings: &crate::routing::Settings, id: &BackendId) -> Gobgp {
        Gobgp::new(id, &settings.of::<Settings>(KIND))
    }
}

impl Kind for GobgpKind {
    fn name(&self) -> &'static str {
        "gobgp"
    }

    fn label(&self) -> &'static str {
        "GoBGP"
    }

    fn daemon(&self) -> &'static str {
        "gobgpd"
    }

    fn read_source(&self) -> &'static str {
        "GoBGP's global RIB"
    }

    fn instance_noun(&self) -> &'static str {
        "API"
    }

    fn instance_text(&self, instance: &str) -> String {
        format!("GoBGP at {instance}")
    }

    fn reconcile_interval(&self, settings: &crate::routing::Settings) -> Duration {
        settings.of::<Settings>(KIND).reconcile_interval
    }

    fn config(&self) -> Option<&'static dyn crate::config::BackendLoader> {
        Some(&super::config::Loader)
    }

    fn opener(&self) -> &'static dyn Opener {
        &OpenWith::<Gobgp>::NEW
    }
}
