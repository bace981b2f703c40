//! The memory backend's words and constructors ([`Kind`]): the defaults (a place is a
//! `vrf`), its instances named `memory:NAME`.

use super::Memory;
use crate::routing::kind::{self, Open};
use crate::routing::{
    writer, BackendError, BackendId, BackendKind, BoxFuture, Kind, PrefixKey, Shown, Snapshot,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the writer of a memory backend reads it afresh.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

/// In this process, for tests; not reachable from a config file.
pub struct MemoryKind;

/// The handle on the memory backend's kind, as [`crate::routing::KINDS`] lists it.
pub const KIND: BackendKind = BackendKind::of(&MemoryKind);

impl BackendId {
    /// The memory backend called `name`.
    pub fn memory(name: &str) -> BackendId {
        BackendId {
            kind: KIND,
            instance: name.to_owned(),
        }
    }
}

impl Open for Memory {
    fn open(_: &crate::routing::Settings, id: &BackendId) -> Memory {
        Memory::named(&id.instance)
    }
}

impl Kind for MemoryKind {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn label(&self) -> &'static str {
        "the memory backend"
    }

    fn instance_noun(&self) -> &'static str {
        "memory backend"
    }

    fn reconcile_interval(&self, _: &crate::routing::Settings) -> Duration {
        RECONCILE_INTERVAL
    }

    fn spawn_writer(
        &self,
        settings: &crate::routing::Settings,
        id: &BackendId,
        interval: Duration,
        reports: mpsc::UnboundedSender<writer::Notice>,
    ) -> writer::WriterHandle {
        kind::spawn_writer::<Memory>(settings, id, interval, reports)
    }

    fn read<'a>(
        &self,
        settings: &'a crate::routing::Settings,
        id: &'a BackendId,
    ) -> BoxFuture<'a, Result<Snapshot, BackendError>> {
        kind::read::<Memory>(settings, id)
    }

    fn inspect<'a>(
        &self,
        settings: &'a crate::routing::Settings,
        id: &'a BackendId,
        prefixes: &'a [PrefixKey],
    ) -> BoxFuture<'a, Result<Vec<Shown>, BackendError>> {
        kind::inspect::<Memory>(settings, id, prefixes)
    }

    fn restart_detection_off(
        &self,
        settings: &crate::routing::Settings,
        id: &BackendId,
    ) -> Option<String> {
        kind::restart_detection_off::<Memory>(settings, id)
    }
}
