//! GoBGP's words and constructors ([`Kind`]): an instance is gobgpd's API address, written
//! `GoBGP at 127.0.0.1:50051`; gobgpd has its global RIB only, so every prefix is in the
//! default place and written alone.

use super::{Gobgp, Settings};
use crate::routing::kind::{self, Open};
use crate::routing::{
    writer, BackendError, BackendId, BackendKind, BoxFuture, Kind, PrefixKey, Shown, Snapshot,
};
use std::time::Duration;
use tokio::sync::mpsc;

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

    fn spawn_writer(
        &self,
        settings: &crate::routing::Settings,
        id: &BackendId,
        interval: Duration,
        reports: mpsc::UnboundedSender<writer::Notice>,
    ) -> writer::WriterHandle {
        kind::spawn_writer::<Gobgp>(settings, id, interval, reports)
    }

    fn read<'a>(
        &self,
        settings: &'a crate::routing::Settings,
        id: &'a BackendId,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>> {
        kind::read::<Gobgp>(settings, id)
    }

    fn inspect<'a>(
        &self,
        settings: &'a crate::routing::Settings,
        id: &'a BackendId,
        prefixes: &'a [PrefixKey],
    ) -> BoxFuture<'a, Result<Vec<Shown>, BackendError>> {
        kind::inspect::<Gobgp>(settings, id, prefixes)
    }

    fn restart_detection_off(
        &self,
        settings: &crate::routing::Settings,
        id: &BackendId,
    ) -> Option<String> {
        kind::restart_detection_off::<Gobgp>(settings, id)
    }
}
